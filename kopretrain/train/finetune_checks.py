"""finetune's checks of its options and inputs, run before a multi-GB checkpoint loads: a decoder
given as the model, a data folder without train/dev rows or labels, fp16 without a GPU."""

from __future__ import annotations

from kopretrain.runs.records import StageError


def check_splits(data: str) -> None:
    """train and dev must hold rows: dev selects the checkpoint (ingest only warns when a few large
    groups leave it empty)."""
    from kopretrain.data.files import open_parquet, split_files

    files = split_files(data)
    for split in ("train", "dev"):
        parquet = open_parquet(files[split]) if split in files else None
        if parquet is None or parquet.metadata.num_rows == 0:
            raise StageError(f"--data {data}: no {split} rows (dev selects the checkpoint); rerun ingest with more "
                             "groups, a larger --dev-fraction, or --group-column none")
        if "label" not in parquet.schema_arrow.names:
            raise StageError(f"{files[split]}: no 'label' column (columns: {', '.join(parquet.schema_arrow.names)})")
        if parquet.read(columns=["label"]).column("label").null_count == parquet.metadata.num_rows:
            raise StageError(f"{files[split]}: no labelled rows (all {parquet.metadata.num_rows} labels are null)")


def check_inputs(cfg) -> None:
    """Everything that can be wrong with the options and inputs, before a multi-GB checkpoint loads."""
    from kopretrain.hub.loading import check_encoder, check_model_ref, load_config
    from kopretrain.train.device import resolve_precision

    resolve_precision(cfg.precision)  # fp16 without a GPU
    check_model_ref(cfg.model, revision=cfg.revision or None)
    check_splits(cfg.data)
    check_encoder(load_config(cfg.model, cfg.revision or None), cfg.model)
    if cfg.teacher:
        check_model_ref(cfg.teacher, "teacher", cfg.teacher_revision or None)
