"""label's file formats as users have them: TSV read and written alike, JSON arrays, long quoted
CSV fields, JSONL values kept as written, a kill between the file and its record."""

from __future__ import annotations

import json

import pytest

from kopretrain import label as L
from kopretrain.runs.records import StageError
from tests.test_label import cfg, model, read, rows, write  # noqa: F401 - model: a fixture

def test_tsv_out_is_written_as_tsv_is_read(model, tmp_path):
    """pyarrow quoted every string ("id", bare " doubled): the labelled file did not read back."""
    src = tmp_path / "nsmc.tsv"
    src.write_text('id\tdocument\tlabel\n1\t"재밌다\t1\n2\t최고 "강추"\t1\n', encoding="utf-8")
    out = L.execute(L.LabelConfig(model=str(model), input=str(src), text_column="document", column_prefix="pred_",
                                  progress=False), tmp_path / "out.tsv")
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t")[:3] == ["id", "document", "label"]
    assert [line.split("\t")[:3] for line in lines[1:]] == [["1", '"재밌다', "1"], ["2", '최고 "강추"', "1"]]
    again = L.execute(L.LabelConfig(model=str(model), input=str(out), text_column="document", column_prefix="again_",
                                    progress=False), tmp_path / "again.tsv")
    assert len(again.read_text(encoding="utf-8").splitlines()) == 3


def test_json_arrays_and_long_quoted_fields(model, tmp_path):
    import csv

    (tmp_path / "arr.json").write_text('[{"id": 0, "text": "좋아요"},\n {"id": 1, "text": "별로"}]\n', encoding="utf-8")
    with pytest.raises(StageError, match="looks like one JSON array"):
        L.execute(L.LabelConfig(model=str(model), input=str(tmp_path / "arr.json"), progress=False), tmp_path / "o.jsonl")
    write(tmp_path / "in.jsonl", rows(3))
    with pytest.raises(StageError, match="name it .jsonl"):
        L.execute(L.LabelConfig(model=str(model), input=str(tmp_path / "in.jsonl"), progress=False), tmp_path / "o.json")
    with open(tmp_path / "ml.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerows([["id", "text"], ["1", "\n".join(f"줄 {i}" for i in range(60))], ["2", "짧은 리뷰"]])
    short = L.execute(L.LabelConfig(model=str(model), input=str(tmp_path / "ml.csv"), progress=False), tmp_path / "a.csv")
    assert len(read(short)) > 2  # 50 lines: the quote is taken for a stray one
    long = L.execute(L.LabelConfig(model=str(model), input=str(tmp_path / "ml.csv"), max_record_lines=100,
                                   progress=False), tmp_path / "b.csv")
    assert list(read(long)["id"]) == ["1", "2"] and read(long)["label"].ne("").all()


def test_jsonl_values_come_out_as_they_went_in_whatever_the_chunk_size(model, tmp_path):
    """A key with mixed types in one chunk was written back as strings (5 -> "5"), depending on --chunk-size."""
    src = tmp_path / "m.jsonl"
    src.write_text('{"text": "좋아요 최고", "score": 5, "w": 1}\n{"text": "별로예요", "score": "5점", "w": 2.5}\n'
                   '{"text": 123, "score": null, "w": 3}\n', encoding="utf-8")
    outs = [L.execute(cfg(model, src, chunk_size=size), tmp_path / f"o{size}.jsonl") for size in (1, 3)]
    lines = [[json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] for out in outs]
    for got in lines:  # (the probabilities may differ in the 6th decimal: batches are padded differently)
        assert [(row["text"], row["score"]) for row in got] == [("좋아요 최고", 5), ("별로예요", "5점"), (123, None)]
        assert [repr(row["w"]) for row in got] == ["1", "2.5", "3"]  # Arrow made the ints 1.0 and 3.0
        assert got[2]["label_error"] == "not_text" and got[0]["label"] == lines[0][0]["label"]


def test_a_kill_between_the_file_and_its_record_resumes(model, tmp_path, monkeypatch):
    """The rerun refused the file as not written by kopretrain, although its work folder was there."""
    src = write(tmp_path / "in.csv", rows(12))
    out = tmp_path / "out.csv"

    def killed(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(L, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        L.execute(cfg(model, src), out)
    assert out.exists() and not (tmp_path / "out.csv.stage.json").exists()
    monkeypatch.undo()
    L.execute(cfg(model, src), out)
    assert (tmp_path / "out.csv.stage.json").exists() and len(read(out)) == 12
    assert not (tmp_path / "out.csv.partial").exists()


def test_max_record_lines_at_its_default_keeps_the_key_of_earlier_versions(model, tmp_path):
    src = write(tmp_path / "in.csv", rows(3))
    with_default, _, _ = L.run_fingerprint(cfg(model, src))
    assert with_default != L.run_fingerprint(cfg(model, src, max_record_lines=80))[0]
    from kopretrain.runs.fingerprints import stage_fingerprint  # the key as the version before computed it

    _, full, inputs = L.run_fingerprint(cfg(model, src))
    before = {k: v for k, v in full.items() if k not in ("progress", "threads", "model", "input", "max_record_lines")}
    assert stage_fingerprint("label", before, inputs) == with_default


@pytest.mark.parametrize("encoding, bom", [("utf-8-sig", True), ("cp949", True), ("utf-8", False)])
def test_a_csv_from_excel_comes_back_with_a_byte_order_mark(model, tmp_path, encoding, bom):
    """Excel shows UTF-8 Hangul without a BOM as mojibake: an input from Excel (BOM or CP949) keeps one."""
    src = tmp_path / "in.csv"
    src.write_bytes("id,text\n1,배송 빨랐어요\n".encode(encoding))
    out = L.execute(cfg(model, src, encoding="cp949" if encoding == "cp949" else "utf-8"), tmp_path / "out.csv")
    assert out.read_bytes().startswith(b"\xef\xbb\xbf") == bom
    again = L.execute(cfg(model, out, column_prefix="again_"), tmp_path / "again.csv")  # our reader strips it
    assert read(again)["id"].tolist() == ["1"]


def test_a_file_that_is_not_parquet_is_a_one_line_error(model, tmp_path):
    fake = tmp_path / "reviews.parquet"
    fake.write_text("text,rating\n좋아요,5\n", encoding="utf-8")  # a CSV under a .parquet name
    with pytest.raises(StageError, match=r"reviews.parquet: not a readable Parquet file .*another format"):
        L.execute(cfg(model, fake), tmp_path / "out.csv")
    assert not list(tmp_path.glob("out.csv*"))


@pytest.mark.parametrize("ext", ["csv", "tsv", "jsonl"])
def test_a_binary_parquet_column_is_written_as_text(model, tmp_path, ext):
    """pyarrow's CSV writer failed on bytes that are not UTF-8, after every row was labelled."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "bin.parquet"
    pq.write_table(pa.table({"text": ["좋아요", "별로"], "blob": [b"\xff\xfe", "확인".encode()]}), src)
    out = L.execute(cfg(model, src), tmp_path / f"out.{ext}")
    assert list(read(out)["blob"]) == ["b'\\xff\\xfe'", "확인"]


def test_a_byte_order_mark_overrules_a_wrong_encoding(model, tmp_path):
    src = tmp_path / "bom.csv"
    src.write_bytes(b"\xef\xbb\xbf" + "id,text\n1,별로\n".encode())
    with pytest.raises(StageError, match="UTF-8 byte-order mark, yet --encoding cp949"):
        L.execute(cfg(model, src, encoding="cp949"), tmp_path / "out.csv")


def test_a_gz_input_that_is_not_gzip_and_a_directory_output_are_named(model, tmp_path):
    src = tmp_path / "reviews.csv.gz"
    src.write_text("text\n좋아요\n", encoding="utf-8")  # not compressed
    with pytest.raises(StageError, match=r"reviews.csv.gz: cannot be read .*not gzip although named .gz"):
        L.execute(cfg(model, src), tmp_path / "out.csv")
    (tmp_path / "outdir").mkdir()
    with pytest.raises(StageError, match=r"outdir is a directory; label writes one file: name it, e.g. .*labeled"):
        L.execute(cfg(model, write(tmp_path / "in.csv", rows())), tmp_path / "outdir")
