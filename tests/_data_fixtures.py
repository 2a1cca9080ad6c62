"""Small data-stage outputs (train/dev/test.parquet with ingest's columns) for stage tests."""

from __future__ import annotations

from pathlib import Path

COLUMNS = ("id", "text", "label", "rating", "group", "date", "source")


def write_stage_dir(path: Path, splits: dict[str, list[str | None]]) -> Path:
    """Write ``{split: [text, ...]}`` as a data stage output with every ingest column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("label", pa.string()),
                        ("rating", pa.float64()), ("group", pa.string()), ("date", pa.string()),
                        ("source", pa.string())])
    path.mkdir(parents=True, exist_ok=True)
    n = 0
    for split, texts in splits.items():
        rows = []
        for text in texts:
            n += 1
            rows.append({"id": f"r{n}", "text": text, "label": "positive", "rating": 10.0,
                         "group": f"g{n % 3}", "date": "24.01.01", "source": f"reviews.jsonl:{n}"})
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path / f"{split}.parquet")
    return path


def read_split(path: Path, split: str) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path / f"{split}.parquet").to_pylist()
