"""label: every row out in order with its columns, probabilities, reasons; all formats; resume."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kopretrain import label as L
from kopretrain.cli import main
from kopretrain.runs.records import StageError
from kopretrain.testing import REVIEWS, tiny_classifier

PROBS = ["prob_negative", "prob_neutral", "prob_positive"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_classifier(tmp_path_factory.mktemp("label") / "model")


def rows(n: int = 23) -> list[dict]:
    """Ids with leading zeros (must survive as text), mixed lengths, two rows without text."""
    out = []
    for i in range(n):
        text = REVIEWS[i % len(REVIEWS)] * (1 + i % 3)
        out.append({"id": f"{i:04d}", "text": text, "movie": f"m{i % 4}"})
    for i, blank in ((5, ""), (11, "   ")):
        if i < n:
            out[i]["text"] = blank
    return out


def write(path: Path, data: list[dict]) -> Path:
    frame = pd.DataFrame(data)
    name = path.name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    elif ".jsonl" in name:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "wt", encoding="utf-8") as fh:
            for row in data:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        frame.to_csv(path, index=False, sep="\t" if ".tsv" in name else ",")
    return path


def read(path: Path) -> pd.DataFrame:
    name = path.name
    if name.endswith(".parquet"):
        return pd.DataFrame(pq.read_table(path).to_pylist(), columns=pq.read_schema(path).names)
    if ".jsonl" in name:
        return pd.read_json(path, lines=True, dtype=False)
    return pd.read_csv(path, sep="\t" if ".tsv" in name else ",", dtype=object, keep_default_na=False)


def values(series) -> list:
    return [None if pd.isna(v) else v for v in series]


def cfg(model: Path, src: Path, **kw) -> L.LabelConfig:
    kw.setdefault("precision", "fp32")  # bf16 may flip near-ties; tests compare exact labels
    kw.setdefault("progress", False)
    return L.LabelConfig(model=str(model), input=str(src), **kw)


def test_rows_kept_in_order_with_columns_and_probabilities(model, tmp_path):
    from kopretrain.inference.classifier import Classifier

    src = write(tmp_path / "in.csv", rows())
    out = L.execute(cfg(model, src, chunk_size=7, batch_size=4), tmp_path / "out.csv")
    df = read(out)
    assert list(df["id"]) == [f"{i:04d}" for i in range(23)]  # order kept, ids not mangled
    assert list(df.columns) == ["id", "text", "movie", "label", "confidence", *PROBS, "label_error"]
    ok = df[df["label_error"] == ""]
    assert len(ok) == 21
    probs = ok[PROBS].astype(float)
    assert ((probs.sum(axis=1) - 1).abs() < 1e-5).all()
    assert (ok["label"] == probs.idxmax(axis=1).str.removeprefix("prob_")).all()
    assert (ok["confidence"].astype(float) == probs.max(axis=1)).all()
    # length-sorted batching must put each result back on its own row: compare with one-by-one
    clf = Classifier.load(str(model))
    single = [clf.predict_proba([t], batch_size=1)[0] for t in ok["text"]]
    assert abs(probs.to_numpy() - single).max() < 1e-4
    assert len(set(ok["label"])) > 1  # the fixture model is not constant


def test_empty_texts_kept_with_reason_and_stage_record(model, tmp_path):
    src = write(tmp_path / "in.parquet", rows())
    out = L.execute(cfg(model, src), tmp_path / "out.parquet")
    df = read(out)
    assert len(df) == 23
    assert df.loc[5, "label_error"] == "empty_text" and df.loc[11, "label_error"] == "empty_text"
    assert df.loc[[5, 11], "label"].isna().all() and df.loc[[5, 11], "prob_neutral"].isna().all()
    record = json.loads((tmp_path / "out.parquet.stage.json").read_text())
    assert record["counts"] == {"rows_in": 23, "rows_out": 23, "rejected": {}}
    assert record["stats"]["errors"] == {"empty_text": 2}
    assert sum(record["stats"]["labels"].values()) == 21
    assert not (tmp_path / "out.parquet.partial").exists()


def test_a_text_of_invisible_characters_is_empty_not_labelled(model, tmp_path):
    """Zero-width spaces or Hangul fillers only got a confident label (ingest rejects them)."""
    data = [{"id": "1", "text": "\u200b\u200b"}, {"id": "2", "text": "\u3164 \uffa0"}, {"id": "3", "text": "좋아요"}]
    df = read(L.execute(cfg(model, write(tmp_path / "in.jsonl", data)), tmp_path / "out.parquet"))
    assert list(df["label_error"].fillna("")) == ["empty_text", "empty_text", ""]


def test_needs_review_marks_low_confidence_and_unlabeled_rows(model, tmp_path):
    src = write(tmp_path / "in.jsonl", rows())
    df = read(L.execute(cfg(model, src, min_confidence=0.8), tmp_path / "out.parquet"))
    low = df["confidence"].isna() | (df["confidence"] < 0.8)
    assert (df["needs_review"] == low).all()
    assert 0 < df["needs_review"].sum() < len(df)


@pytest.mark.parametrize("src_name,out_name", [
    ("in.csv", "out.parquet"), ("in.tsv", "out.jsonl.gz"), ("in.jsonl.gz", "out.csv"),
    ("in.parquet", "out.tsv"), ("in.jsonl", "out.csv.gz"), ("in.parquet", "out.jsonl"),
])
def test_formats_in_and_out(model, tmp_path, src_name, out_name):
    data = rows()
    src = write(tmp_path / src_name, data)
    out = L.execute(cfg(model, src, chunk_size=10), tmp_path / out_name)
    df = read(out)
    assert [str(v) for v in df["id"]] == [r["id"] for r in data]  # "0007" stays "0007" in every format
    assert list(df["text"]) == [r["text"] for r in data]
    ref = read(L.execute(cfg(model, write(tmp_path / "ref.csv", data)), tmp_path / "ref.out.csv"))
    assert [str(v) if v == v and v is not None else "" for v in df["label"]] == list(ref["label"])


def test_resume_after_kill_gives_identical_output(model, tmp_path, monkeypatch, capsys):
    src = write(tmp_path / "in.csv", rows())
    whole = L.execute(cfg(model, src, chunk_size=5), tmp_path / "whole.csv").read_bytes()

    real = L.commit_chunk
    calls = []

    def dies_after_two(*args, **kw):
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated kill")
        calls.append(args[2])
        return real(*args, **kw)

    monkeypatch.setattr(L, "commit_chunk", dies_after_two)
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt):
        L.execute(cfg(model, src, chunk_size=5), out)
    assert not out.exists()
    manifest = json.loads((tmp_path / "out.csv.partial" / "manifest.json").read_text())
    assert [c["rows"] for c in manifest["chunks"]] == [5, 5]

    monkeypatch.setattr(L, "commit_chunk", real)
    (tmp_path / "out.csv.partial" / "part-000001.csv").unlink()  # a lost part is redone, not trusted
    L.execute(cfg(model, src, chunk_size=5, progress=False), out)
    assert "resuming" in capsys.readouterr().out
    assert out.read_bytes() == whole
    record = json.loads((tmp_path / "out.csv.stage.json").read_text())
    assert record["resumed"] is True and record["stats"]["rows_labeled_this_run"] == 18
    assert not (tmp_path / "out.csv.partial").exists()


def test_a_resumed_auto_run_keeps_the_precision_the_first_run_chose(model, tmp_path, monkeypatch):
    """precision auto times fp32 against bf16 on each start: a resumed run could label the rest of
    the file in the other precision, and record only that one."""
    import kopretrain.inference.scoring as scoring

    src = write(tmp_path / "in.csv", rows())
    real = L.commit_chunk

    def dies_after_one(partial, manifest, k, *args, **kw):
        if k == 1:
            raise KeyboardInterrupt("simulated kill")
        return real(partial, manifest, k, *args, **kw)

    monkeypatch.setattr(L, "commit_chunk", dies_after_one)
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt):
        L.execute(cfg(model, src, chunk_size=5, precision="auto"), out)
    manifest = json.loads((tmp_path / "out.csv.partial" / "manifest.json").read_text())
    first = manifest["precision"]
    assert first in ("fp32", "bf16")

    other = "bf16" if first == "fp32" else "fp32"  # this start would choose the other precision
    monkeypatch.setattr(scoring, "resolve", lambda precision: other if precision == "auto" else precision)
    monkeypatch.setattr(scoring, "worth_measuring", lambda precision: False)
    monkeypatch.setattr(L, "commit_chunk", real)
    L.execute(cfg(model, src, chunk_size=5, precision="auto"), out)
    record = json.loads((tmp_path / "out.csv.stage.json").read_text())
    assert record["resumed"] is True
    assert record["stats"]["precision"] == first


def test_changed_options_discard_partial_and_rerun_is_skipped(model, tmp_path, capsys):
    src = write(tmp_path / "in.csv", rows())
    partial = tmp_path / "out.csv.partial"
    partial.mkdir()
    (partial / "manifest.json").write_text(json.dumps({"fingerprint": "other", "chunks": [{"rows": 5}]}))
    out = L.execute(cfg(model, src), tmp_path / "out.csv")
    assert "discarding" in capsys.readouterr().out
    assert len(read(out)) == 23
    L.execute(cfg(model, src, progress=True), out)  # progress is cosmetic: same fingerprint
    assert "up to date" in capsys.readouterr().out


def test_a_row_with_more_or_fewer_fields_than_the_header_is_flagged_not_shifted(model, tmp_path):
    """A short row got empty cells at the end: the date landed in the review column and was labelled."""
    src = tmp_path / "short.csv"
    src.write_text("id,rating,review,date\n1,5,좋아요,2024-01-01\n2,별로예요,2024-01-02\n3,1,최악,2024-01-03,x\n")
    df = read(L.execute(cfg(model, src, text_column="review"), tmp_path / "out.csv"))
    assert list(df["label_error"]) == ["", "wrong_field_count", "wrong_field_count"]
    assert df["label"][0] != "" and (df["label"][[1, 2]] == "").all()
    assert df["review"][1] == "2,별로예요,2024-01-02"  # the line as written, to find and fix


def test_mixed_encodings_and_broken_json_are_rows_not_crashes(model, tmp_path):
    csv = tmp_path / "mixed.csv"
    csv.write_bytes("id,text\n1,좋아요 최고\n".encode() + b"2," + "별로예요".encode("cp949") + b"\n3,ok \xff\xfe\n")
    df = read(L.execute(cfg(model, csv), tmp_path / "mixed.out.parquet"))
    assert list(df["text"][:2]) == ["좋아요 최고", "별로예요"]  # the CP949 row is recovered
    assert values(df["label_error"]) == [None, None, "invalid_encoding"]
    record = json.loads((tmp_path / "mixed.out.parquet.stage.json").read_text())
    assert record["stats"]["encoding_repairs"] == {"cells_invalid_encoding": 1, "cells_recovered_encoding": 1}

    jsonl = tmp_path / "broken.jsonl"
    jsonl.write_text('{"text": "재밌어요"}\n{"text": "끝이 잘린\n\n[1, 2]\n{"text": 7}\n{"id": 9}\n', encoding="utf-8")
    df = read(L.execute(cfg(model, jsonl), tmp_path / "broken.out.parquet"))
    assert values(df["label_error"]) == [None, "invalid_json", "invalid_json", "not_text", "missing_text"]
    assert df["label"].notna().sum() == 1


def test_clear_errors(model, tmp_path):
    src = write(tmp_path / "in.csv", rows())
    with pytest.raises(StageError, match=r"no column 'review' \(columns: id, text, movie\)"):
        L.execute(cfg(model, src, text_column="review"), tmp_path / "o.csv")
    with pytest.raises(StageError, match="model directory not found"):
        L.execute(cfg(tmp_path / "nope", src), tmp_path / "o.csv")
    with pytest.raises(StageError, match="is the input file"):
        L.execute(cfg(model, src), src)
    with pytest.raises(StageError, match="unknown file type"):
        L.execute(cfg(model, src), tmp_path / "o.xlsx")
    labeled = write(tmp_path / "gold.csv", [{**r, "label": "positive"} for r in rows()])
    with pytest.raises(StageError, match="--column-prefix"):
        L.execute(cfg(model, labeled), tmp_path / "o.csv")
    df = read(L.execute(cfg(model, labeled, column_prefix="pred_"), tmp_path / "o.csv"))
    assert set(df["label"]) == {"positive"} and "pred_label" in df.columns


def test_model_without_id2label_is_refused(tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    from kopretrain.testing import tiny_tokenizer

    mlm = tmp_path / "mlm"
    tok = tiny_tokenizer(REVIEWS, mlm)
    BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64)).save_pretrained(mlm)
    src = write(tmp_path / "in.csv", rows(3))
    with pytest.raises(StageError, match="no sentiment labels"):
        L.execute(cfg(mlm, src), tmp_path / "o.csv")


def test_empty_inputs_give_a_header_only_output(model, tmp_path, capsys):
    zero = tmp_path / "zero.csv"
    zero.write_bytes(b"")
    out = L.execute(cfg(model, zero), tmp_path / "zero.out.csv")
    assert out.read_text().strip() == '"label","confidence","prob_negative","prob_neutral","prob_positive","label_error"'
    assert "has no rows" in capsys.readouterr().out
    header = tmp_path / "header.csv"
    header.write_text("id,text\n")
    assert list(read(L.execute(cfg(model, header), tmp_path / "header.out.csv")).columns)[:3] == ["id", "text", "label"]
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.int64()), "text": pa.array([], pa.string())}), empty)
    table = pq.read_table(L.execute(cfg(model, empty), tmp_path / "empty.out.parquet"))
    assert table.num_rows == 0 and table.schema.field("id").type == pa.int64()


def test_cli(model, tmp_path, capsys):
    src = write(tmp_path / "in.tsv", rows(4))
    out = tmp_path / "out.jsonl"
    assert main(["label", "--model", str(model), "--input", str(src), "--output", str(out),
                 "--precision", "fp32", "--no-progress"]) == 0
    assert len(read(out)) == 4
    assert main(["label", "--model", str(model), "--input", str(src), "--output", str(out),
                 "--text-column", "body"]) == 2
    assert "no column 'body'" in capsys.readouterr().err


def test_recorded_normalization_is_applied(tmp_path):
    pytest.importorskip("kopretrain.normalize")
    from kopretrain.inference.classifier import Classifier

    model = tiny_classifier(tmp_path / "m", textprep={"normalize": {}})
    noisy = ["배송 빨랐어요 최고ㅋㅋㅋㅋㅋㅋㅋㅋ!!!!!!!!", "별로예요ㅠㅠㅠㅠㅠㅠ"]
    src = write(tmp_path / "in.csv", [{"text": t} for t in noisy])
    df = read(L.execute(cfg(model, src), tmp_path / "o.csv"))
    clf = Classifier.load(str(model))
    assert clf.prep.prepare(noisy) != noisy  # the rules do change these texts
    expected = clf.predict_proba(noisy)  # prepared=False: applies kopretrain.json
    assert abs(df[PROBS].astype(float).to_numpy() - expected).max() < 1e-5


def test_a_change_of_the_normalize_rules_relabels(tmp_path, monkeypatch):
    """Labels made through yesterday's rules stayed up to date after an upgrade changed them."""
    from kopretrain.text import probes, rules

    model = tiny_classifier(tmp_path / "m", textprep={"normalize": {}})
    src, out = write(tmp_path / "in.csv", [{"text": "별로예요"}]), tmp_path / "o.csv"
    L.execute(cfg(model, src), out)
    assert L.status(cfg(model, src), out) == "up to date"
    original = rules.censor
    monkeypatch.setattr(rules, "censor", lambda text: original(text).replace("ZOO", "Z00"))
    probes._digest.cache_clear()
    try:
        assert L.status(cfg(model, src), out) == "will run"
    finally:
        monkeypatch.undo()
        probes._digest.cache_clear()
    assert L.status(cfg(model, src), out) == "up to date"


def test_a_hub_id_labels_like_the_same_folder_on_disk(tmp_path, monkeypatch):
    """--model OWNER/NAME --revision: the recorded normalization and length come from the Hub too."""
    import shutil

    from tests.fixtures.hub import fake_hub

    local = tiny_classifier(tmp_path / "m", textprep={"normalize": {"max_repeat": 1}, "extra": {"max_length": 8}})
    sha = "d" * 40
    shutil.copytree(local, fake_hub(monkeypatch, tmp_path / "hub", "me/clf", sha))
    noisy = [{"text": "배송 빨랐어요 최고ㅋㅋㅋㅋㅋㅋㅋㅋ!!!!!!!! 정말 정말 좋아요 또 살게요"}, {"text": "별로예요ㅠㅠㅠㅠㅠㅠ"}]
    src = write(tmp_path / "in.csv", noisy)
    on_disk = read(L.execute(cfg(local, src), tmp_path / "a.csv"))
    from_hub = read(L.execute(L.LabelConfig(model="me/clf", revision=sha, input=str(src), precision="fp32",
                                            progress=False), tmp_path / "b.csv"))
    assert from_hub[PROBS].equals(on_disk[PROBS])


@pytest.mark.parametrize("out_name", ["o.jsonl", "o.csv", "o.parquet"])
def test_jsonl_keys_named_like_added_columns_are_refused(model, tmp_path, out_name):
    """JSONL keys label/confidence used to be overwritten (JSONL output) or crash CSV/Parquet output
    with 'Field "label" exists 2 times', leaving .tmp/.partial; now the CSV/Parquet error, per chunk."""
    first = write(tmp_path / "first.jsonl", [{"text": "좋아요 최고", "label": "positive", "confidence": "high"}])
    with pytest.raises(StageError, match=r"first\.jsonl:1 already has column\(s\) label, confidence; .*--column-prefix"):
        L.execute(cfg(model, first), tmp_path / out_name)
    later = write(tmp_path / "later.jsonl", rows(4)[:3] + [{"text": "별로예요", "label": "negative"}])
    with pytest.raises(StageError, match=r"later\.jsonl:4 already has column\(s\) label;"):
        L.execute(cfg(model, later, chunk_size=2), tmp_path / out_name)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["first.jsonl", "later.jsonl"]
    df = read(L.execute(cfg(model, later, column_prefix="pred_"), tmp_path / out_name))
    assert [v or None for v in values(df["label"])] == [None, None, None, "negative"]
    assert all(values(df["pred_label"]))


def test_a_copied_workdir_or_another_folder_is_the_same_labelling_run(model, tmp_path, monkeypatch, capsys):
    """The input and model paths' spelling is not the run: label used to relabel a copied workdir
    (and a pipeline run from another folder); outputs keyed the old way stay up to date too."""
    import shutil

    src = write(tmp_path / "in.csv", rows(3))
    out = tmp_path / "o.csv"
    L.execute(cfg(model, src), out)
    monkeypatch.chdir(tmp_path)
    assert L.status(cfg(model, Path("in.csv")), out) == "up to date"
    copy = tmp_path / "model-copy"
    shutil.copytree(model, copy)
    assert L.status(cfg(copy, src), out) == "up to date"
    record = out.with_name(out.name + ".stage.json")
    legacy = L.run_fingerprint(cfg(model, src), spelled=True)[0]
    record.write_text(json.dumps({**json.loads(record.read_text()), "fingerprint": legacy}))
    capsys.readouterr()
    L.execute(cfg(model, src), out)
    assert "up to date" in capsys.readouterr().out
