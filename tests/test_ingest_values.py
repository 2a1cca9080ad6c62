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


# ---------------------------------------------------------------- found by a review acting as a user


def test_a_repeated_column_name_is_an_error_not_the_last_one(tmp_path):
    """``review,rating,review`` stored the second review; Parquet and JSON keys alike."""
    from kopretrain.runs.records import StageError

    src = tmp_path / "dup.csv"
    src.write_text("id,review,rating,review\n1,첫번째,5,두번째\n", encoding="utf-8")
    with pytest.raises(StageError, match=r"dup.csv: column 'review' appears more than once"):
        ingest(tmp_path, input=str(src), **ALL_TRAIN)
    table = pa.Table.from_arrays([pa.array(["a"]), pa.array([5]), pa.array(["b"])], names=["review", "rating", "review"])
    pq.write_table(table, tmp_path / "dup.parquet")
    with pytest.raises(StageError, match="column 'review' appears more than once"):
        ingest(tmp_path, input=str(tmp_path / "dup.parquet"), **ALL_TRAIN)
    write_jsonl(tmp_path / "dup.jsonl", ['{"review": "a", "rating": 5, "review": "b"}'])
    with pytest.raises(StageError, match=r"dup.jsonl:1: key 'review' appears twice"):
        ingest(tmp_path, input=str(tmp_path / "dup.jsonl"), **ALL_TRAIN)


def test_several_text_columns_join_and_a_rating_takes_one(tmp_path):
    from kopretrain.runs.records import StageError

    src = tmp_path / "t.csv"
    src.write_text("id,title,body,rating\n1,최고,배송도 빠르고 좋아요,5\n2,,본문만,1\n", encoding="utf-8")
    output, _ = ingest(tmp_path, input=str(src), text_column="title,body", **ALL_TRAIN)
    assert sorted(r["text"] for r in rows(output)) == ["본문만", "최고 배송도 빠르고 좋아요"]
    write_jsonl(tmp_path / "t.jsonl", ['{"id": 1, "title": "최고", "body": "좋아요", "rating": 5}',
                                       '{"id": 2, "body": "제목 없는 리뷰", "rating": 5}'])  # a key left out
    two, _ = ingest(tmp_path, "o3", input=str(tmp_path / "t.jsonl"), text_column="title,body", **ALL_TRAIN)
    assert sorted(r["text"] for r in rows(two)) == ["제목 없는 리뷰", "최고 좋아요"]
    with pytest.raises(StageError, match="--rating-column rating,id: name one column"):
        ingest(tmp_path, "o2", input=str(src), text_column="title,body", rating_column="rating,id", **ALL_TRAIN)


def test_jsonl_columns_come_from_every_scanned_record(tmp_path):
    """The first record alone decided the columns: one without movie_id turned the group split off."""
    lines = [json.dumps({"review": "첫 줄", "rating": 10}, ensure_ascii=False)]
    lines += [json.dumps({"review": f"리뷰 {i}", "rating": 1 + i % 10, "movie_id": f"m{i % 5}"}, ensure_ascii=False)
              for i in range(200)]
    output, record = ingest(tmp_path, input=str(write_jsonl(tmp_path / "s.jsonl", lines)), label_scheme="nsmc")
    groups = {s: {r["group"] for r in split_table(output, s).to_pylist()} for s in SPLITS}
    assert groups["train"] - {None} and not (groups["train"] & groups["dev"]) and not (groups["train"] & groups["test"])


def test_a_jsonl_file_in_another_encoding_is_an_error_not_an_empty_file(tmp_path):
    """Its rows vanished from the accounting ("empty file") when read beside a good file."""
    from kopretrain.runs.records import StageError

    folder = tmp_path / "jd"
    folder.mkdir()
    lines = "".join(json.dumps({"review": f"리뷰{i}", "rating": 5}, ensure_ascii=False) + "\n" for i in range(20))
    (folder / "a.jsonl").write_bytes(lines.encode("cp949"))
    write_jsonl(folder / "b.jsonl", [json.dumps({"review": f"ok{i}", "rating": 1}) for i in range(5)])
    with pytest.raises(StageError, match=r"a.jsonl: no JSON object .* not valid utf-8: set --encoding"):
        ingest(tmp_path, input=str(folder))
    (tmp_path / "pretty.json").write_text('{\n  "review": "a",\n  "rating": 5\n}\n')
    with pytest.raises(StageError, match="pretty-printed JSON document"):
        ingest(tmp_path, "o2", input=str(tmp_path / "pretty.json"))


def test_a_whole_number_group_is_one_group_whatever_its_spelling(tmp_path):
    """CSV "7.0" (pandas writes an int column with gaps so) and "7" were two groups: one movie in two splits."""
    folder = tmp_path / "gd"
    folder.mkdir()
    for name, spell in (("a.csv", "{}"), ("b.csv", "{}.0")):
        (folder / name).write_text("movie_id,rating,review\n" + "".join(
            f"{spell.format(i % 10)},{i % 10 + 1},{name} 리뷰 {i}\n" for i in range(300)), encoding="utf-8")
    output, _ = ingest(tmp_path, input=str(folder), label_scheme="nsmc")
    groups = {s: {r["group"] for r in split_table(output, s).to_pylist()} for s in SPLITS}
    assert len(set().union(*groups.values())) == 10
    assert not (groups["train"] & groups["dev"] or groups["train"] & groups["test"] or groups["dev"] & groups["test"])


def test_an_ingest_output_as_input_reads_its_splits_only(tmp_path):
    src = tmp_path / "d.csv"
    src.write_text("id,rating,review\n1,5,최고예요\n2,5,최고예요\n3,1,별로\n", encoding="utf-8")
    first, record = ingest(tmp_path, "o1", input=str(src), **ALL_TRAIN)
    assert record["counts"]["rejected"]  # a duplicate: rejected.jsonl exists
    _, again = ingest(tmp_path, "o2", input=str(first), label_scheme="none", **ALL_TRAIN)
    assert again["counts"]["rows_in"] == 2


def test_a_saved_dataset_folder_is_read_and_datasets_errors_are_one_line(tmp_path, capsys):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"review": ["좋아", "별로"], "rating": [5, 1]})}) \
        .save_to_disk(str(tmp_path / "hfd"))
    output, record = ingest(tmp_path, input=str(tmp_path / "hfd"), **ALL_TRAIN)  # found without --format datasets
    assert record["counts"]["rows_out"] == 2
    code = main(["ingest", "--input", str(tmp_path / "hfd"), "--format", "datasets", "--dataset-split", "test",
                 "--label-scheme", "stars5", "-o", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert code == 2 and "no split 'test'" in err and "Traceback" not in err
    assert not (tmp_path / "o2.partial").exists()


def test_load_dataset_reads_the_folder_with_an_empty_split(tmp_path):
    datasets = pytest.importorskip("datasets")
    src = tmp_path / "d.csv"
    src.write_text("id,rating,review\n1,5,최고예요\n3,1,별로\n", encoding="utf-8")
    output, _ = ingest(tmp_path, input=str(src), **ALL_TRAIN)
    loaded = datasets.load_dataset(str(output), cache_dir=str(tmp_path / "hf"))
    assert list(loaded) == ["train"] and loaded["train"].num_rows == 2


def test_a_broken_compressed_or_parquet_header_names_the_file(tmp_path):
    from kopretrain.runs.records import StageError

    (tmp_path / "x.csv.gz").write_bytes(b"\xef\xbbnot gzip at all")
    (tmp_path / "y.parquet").write_bytes(b"PAR1 truncated")
    for name in ("x.csv.gz", "y.parquet"):
        with pytest.raises(StageError, match=rf"{name}: "):
            ingest(tmp_path, input=str(tmp_path / name))


def test_ratings_labels_and_outputs_that_meant_something_else(tmp_path):
    from kopretrain.data.schemes import LabelError, build_scheme, parse_rating
    from kopretrain.runs.outputs import OutputError

    with pytest.raises(LabelError):
        parse_rating("1_0")  # float() reads it as 10
    with pytest.raises(ValueError, match="contradicts"):
        build_scheme("column", label_map={"0": "negative", "0.0": "positive"})
    src = tmp_path / "d.csv"
    src.write_text("id,rating,review\n1,5,최고예요\n3,1,별로\n", encoding="utf-8")
    output, _ = ingest(tmp_path, input=str(src), **ALL_TRAIN)
    with pytest.raises(OutputError, match="is inside --output"):
        ingest(tmp_path, input=str(output / "train.parquet"), label_scheme="none", **ALL_TRAIN)
    foreign = tmp_path / "f"
    foreign.mkdir()
    (foreign / "stage.json").write_text("{}")
    (foreign / "mine.csv").write_text("keep me")
    with pytest.raises(Exception, match="kopretrain did not write"):
        ingest(tmp_path, "f", input=str(src), **ALL_TRAIN)
    assert (foreign / "mine.csv").read_text() == "keep me"


def test_classlabel_columns_read_as_names_and_dataset_options_need_datasets(tmp_path):
    """Re-ingesting an ingest output with --format datasets rejected every row as label_unmapped
    (ClassLabel ids 0/1/2); --dataset-split on a CSV was silently ignored."""
    from kopretrain.runs.records import StageError

    src = tmp_path / "d.csv"
    src.write_text("id,rating,review\n1,5,최고예요\n3,1,별로\n4,3,그냥\n", encoding="utf-8")
    first, _ = ingest(tmp_path, input=str(src), **ALL_TRAIN)
    _, again = ingest(tmp_path, "o2", input=str(first), format="datasets", label_scheme="column",
                      rating_column="none", **ALL_TRAIN)
    assert again["counts"]["rows_out"] == 3 and not again["counts"]["rejected"]
    with pytest.raises(StageError, match="--dataset-split only apply with --format datasets"):
        ingest(tmp_path, "o3", input=str(src), dataset_split="test", **ALL_TRAIN)
    (tmp_path / "k.csv").write_bytes("아이디,리뷰\n1,좋아\n".encode("cp949"))
    with pytest.raises(StageError, match="set --encoding"):
        ingest(tmp_path, "o4", input=str(tmp_path / "k.csv"), **ALL_TRAIN)


def test_ids_numbered_per_file_are_warned_about(tmp_path):
    folder = tmp_path / "shops"
    folder.mkdir()
    for shop in ("a", "b"):
        (folder / f"{shop}.csv").write_text("id,rating,review\n" + "".join(
            f"{i},{i % 5 + 1},{shop} 가게 리뷰 {i}\n" for i in range(1, 21)), encoding="utf-8")
    _, record = ingest(tmp_path, input=str(folder), **ALL_TRAIN)
    assert record["counts"]["rejected"] == {"duplicate_id": 20}
    assert any("are ids numbered per file" in w for w in record["stats"]["warnings"])
    _, plain = ingest(tmp_path, "o2", input=str(folder / "a.csv"), **ALL_TRAIN)
    assert not plain["stats"]["warnings"]


def test_ratings_on_another_scale_are_warned_about_in_the_record(sample_path, tmp_path):
    """The bundled 1-5 star sample read with the 1-10 nsmc scheme: every 5-star review neutral."""
    _, record = ingest(tmp_path, input=str(sample_path), label_scheme="nsmc")
    assert any("no review became positive" in w for w in record["stats"]["warnings"])
    _, record = ingest(tmp_path, out="stars5", input=str(sample_path))
    assert not any("scale" in w for w in record["stats"]["warnings"])


def test_a_label_column_under_a_rating_scheme_is_refused():
    """--label-column with stars5 did nothing: the ratings gave the labels."""
    with pytest.raises(ValueError, match="--label-column sentiment: labels come from the ratings"):
        IngestConfig(input="x.csv", label_scheme="stars5", label_column="sentiment")
    IngestConfig(input="x.csv", label_scheme="column", label_column="sentiment")
