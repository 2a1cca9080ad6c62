"""Ingest on awkward values and layouts: broken quotes, NaN, non-string text, unused junk ratings,
numeric label strings, an output inside its input directory, encodings, Hangul fillers."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kopretrain.cli import main
from kopretrain.ingest import IngestConfig
from kopretrain.runs.records import read_stage
from tests.test_ingest import ingest, rejected, sample_rows, split_table, write_csv

SPLITS = ("train", "dev", "test")
ALL_TRAIN = {"dev_fraction": 0.0, "test_fraction": 0.0}


def rows(output):
    return [r for s in SPLITS for r in split_table(output, s).to_pylist()]


def write_jsonl(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_stray_quote_keeps_the_good_rows_after_it(tmp_path):
    src = tmp_path / "q2.csv"
    src.write_text('id,review,rating\n1,"닫히지 않은 리뷰,5\n2,정상 리뷰 최고,5\n3,"좋아"요 별로,1\n4,끝 별로,1\n',
                   encoding="utf-8")
    output, record = ingest(tmp_path, input=str(src), **ALL_TRAIN)
    assert record["counts"] == {"rows_in": 4, "rows_out": 2,
                                "rejected": {"broken_quotes": 1, "unbalanced_quote": 1}}
    assert sorted(r["id"] for r in rows(output)) == ["2", "4"]
    assert [(r["line"], r["reason"]) for r in rejected(output)] == [(2, "unbalanced_quote"), (4, "broken_quotes")]


def test_nan_id_group_and_label_are_missing_not_the_string_nan(tmp_path):
    src = write_jsonl(tmp_path / "r.jsonl", [
        '{"review": "배송 빨라요 좋아요", "rating": 5, "product_id": NaN, "id": NaN}',
        '{"review": "포장이 엉망이에요", "rating": 1, "product_id": NaN, "id": NaN}',
        '{"review": "그냥 그래요", "rating": 3, "product_id": "p1", "id": "a"}',
    ])
    output, record = ingest(tmp_path, input=str(src), **ALL_TRAIN)
    assert record["counts"]["rejected"] == {}  # two NaN ids are not one duplicate id "nan"
    assert sorted(r["group"] or "-" for r in rows(output)) == ["-", "-", "p1"]
    assert record["stats"]["splits"]["train"]["rows_without_group"] == 2
    pq.write_table(pa.table({"text": ["좋아요 최고", "별로예요", "보통"], "sentiment": [1.0, float("nan"), 0.0],
                             "item_id": [float("nan"), float("nan"), 3.0]}), tmp_path / "r.parquet")
    output, record = ingest(tmp_path, out="o2", input=str(tmp_path / "r.parquet"), label_scheme="column",
                            label_map={"0": "negative", "1": "positive"}, **ALL_TRAIN)
    assert record["counts"]["rejected"] == {"label_missing": 1}
    assert sorted(r["group"] or "-" for r in rows(output)) == ["-", "3"]


def test_non_string_text_is_rejected_not_stored_as_its_repr(tmp_path):
    src = write_jsonl(tmp_path / "r.jsonl", [
        '{"review": true, "rating": 5}', '{"review": ["좋아요", "최고"], "rating": 5}',
        '{"review": {"t": "별로"}, "rating": 1}', '{"review": 12345, "rating": 1}',
        '{"review": "진짜 글", "rating": 5}', '{"review": null, "rating": 5}',
    ])
    output, record = ingest(tmp_path, input=str(src), **ALL_TRAIN)
    assert record["counts"]["rejected"] == {"not_text": 4, "empty_text": 1}
    assert [r["text"] for r in rows(output)] == ["진짜 글"]
    assert {r["line"] for r in rejected(output) if r["reason"] == "not_text"} == {1, 2, 3, 4}
    table = pa.table({"review": pa.array(["좋아요".encode(), b"\xff\xfe", "별로".encode()], pa.binary()),
                      "rating": [5, 5, 1]})
    pq.write_table(table, tmp_path / "b.parquet")
    output, record = ingest(tmp_path, out="o2", input=str(tmp_path / "b.parquet"), **ALL_TRAIN)
    assert record["counts"]["rejected"] == {"invalid_utf8": 1}  # binary is decoded when it is UTF-8
    assert sorted(r["text"] for r in rows(output)) == ["별로", "좋아요"]


@pytest.mark.parametrize("scheme, extra", [
    ("column", {"label_map": {"0": "negative", "1": "positive"}}), ("none", {})])
def test_an_unused_junk_rating_is_stored_as_null_and_counted(tmp_path, scheme, extra):
    src = tmp_path / "lab.csv"
    src.write_text("text,sentiment,score\n배송 빨라요 좋아요,1,5점\n별로예요,0,1\n", encoding="utf-8")
    output, record = ingest(tmp_path, input=str(src), label_scheme=scheme, **extra, **ALL_TRAIN)
    assert record["counts"] == {"rows_in": 2, "rows_out": 2, "rejected": {}}
    assert sorted((r["text"], r["rating"]) for r in rows(output)) == [("배송 빨라요 좋아요", None), ("별로예요", 1.0)]
    assert record["stats"]["ratings_not_numbers"] == 1
    _, by_rating = ingest(tmp_path, out="o2", input=str(src), label_scheme="stars5", **ALL_TRAIN)
    assert by_rating["counts"]["rejected"] == {"rating_invalid": 1}  # the rating labels: still rejected


def test_integral_float_label_strings_map_like_integers_in_every_format(tmp_path):
    body = "text,label\n" + "".join(f"리뷰 {i} 내용,{i % 2}.0\n" for i in range(6))
    (tmp_path / "r.csv").write_text(body, encoding="utf-8")
    write_jsonl(tmp_path / "r.jsonl", [json.dumps({"text": f"다른 리뷰 {i}", "label": i % 2 * 1.0}, ensure_ascii=False)
                                       for i in range(6)])
    label_map = {"0": "negative", "1": "positive"}
    for name in ("r.csv", "r.jsonl"):
        output, record = ingest(tmp_path, out=f"o-{name}", input=str(tmp_path / name), label_scheme="column",
                                label_map=label_map, **ALL_TRAIN)
        assert record["counts"]["rejected"] == {}, name
        assert sorted(r["label"] for r in rows(output)) == ["negative"] * 3 + ["positive"] * 3


def test_output_inside_the_input_directory_is_not_read_back(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_csv(raw / "a.csv", sample_rows(10, 4))
    argv = ["ingest", "--input", str(raw), "--label-scheme", "stars5", "-o", str(raw / "out")]
    assert main(argv) == 0
    first = read_stage(raw / "out")
    assert main(argv) == 0, capsys.readouterr().err
    assert "up to date" in capsys.readouterr().out
    assert main(argv + ["--force"]) == 0  # a forced rerun reads a.csv only, not out/*.parquet or rejected.jsonl
    assert read_stage(raw / "out")["counts"] == first["counts"] and first["counts"]["rows_in"] == 40


@pytest.mark.parametrize("encoding, ok", [
    ("cp932", True), ("iso8859-16", True), ("cp949", True),
    ("utf-16", False), ("UTF_32LE", False), ("utf16", False)])
def test_only_utf16_and_utf32_encodings_are_refused(encoding, ok):
    if ok:
        IngestConfig(encoding=encoding)
    else:
        with pytest.raises(ValueError, match="UTF-16/32"):
            IngestConfig(encoding=encoding)


@pytest.mark.parametrize("filler", ["\u3164", "\u115f", "\u1160", "\uffa0", " \u3164\u3164 "])
def test_a_text_of_hangul_fillers_is_empty(tmp_path, filler):
    src = write_jsonl(tmp_path / "r.jsonl", [json.dumps({"review": filler, "rating": 5}),
                                             json.dumps({"review": "진짜 리뷰", "rating": 5}, ensure_ascii=False)])
    _, record = ingest(tmp_path, input=str(src), **ALL_TRAIN)
    assert record["counts"]["rejected"] == {"empty_text": 1}


def test_a_cp949_file_read_as_utf8_suggests_the_encoding(tmp_path, capsys):
    src = tmp_path / "excel.csv"
    src.write_bytes("review,rating\n배송 빨라요 좋아요,5\n별로예요,1\n보통이에요,3\n".encode("cp949"))
    args = ["ingest", "--input", str(src), "--label-scheme", "stars5"]
    assert main(args + ["-o", str(tmp_path / "a")]) == 2
    assert "try --encoding cp949" in capsys.readouterr().err
    assert main(args + ["--encoding", "cp949", "-o", str(tmp_path / "b")]) == 0


def test_a_raw_file_given_to_normalize_says_to_ingest_it_first(tmp_path, capsys):
    src = write_csv(tmp_path / "reviews.csv", sample_rows()[:5])
    assert main(["normalize", "--input", str(src), "-o", str(tmp_path / "n")]) == 2
    assert "is a file, not a stage output folder" in capsys.readouterr().err
