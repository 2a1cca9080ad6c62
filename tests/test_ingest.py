import csv
import gzip
import itertools
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from kopretrain.runs import registry
from kopretrain.cli import main
from kopretrain.runs.config import ConfigError, from_dict
from kopretrain.ingest import IngestConfig
from kopretrain.runs.records import StageError, read_stage

HEADER = ["review_id", "domain", "item_id", "rating", "date", "review"]
OPINIONS = {1: "최악이에요 돈 아까움", 2: "별로였어요", 3: "그냥 무난했어요", 4: "괜찮네요 추천", 5: "완전 최고예요"}


def sample_rows(n_items=30, per_item=8):
    """Distinct invented reviews (stars 1-5), grouped by item, no duplicates."""
    rows = []
    for i, (item, k) in enumerate(itertools.product(range(n_items), range(per_item))):
        stars = (item + k) % 5 + 1
        rows.append([str(1000 + i), "product", f"p{item}", str(stars), "2024-01-02",
                     f"{OPINIONS[stars]} 상품{item} 후기{k}"])
    return rows


def write_csv(path: Path, rows, header=HEADER) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def ingest(tmp_path, out="out", **cfg):
    cfg.setdefault("label_scheme", "stars5")
    config = from_dict(IngestConfig, cfg)
    output = tmp_path / out
    registry.execute("ingest", config, output)
    return output, read_stage(output)


def split_table(output, split):
    return pq.read_table(output / f"{split}.parquet")


def rejected(output):
    path = output / "rejected.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def test_clean_csv_end_to_end(tmp_path):
    src = write_csv(tmp_path / "reviews.csv", sample_rows())
    output, record = ingest(tmp_path, input=str(src))
    counts = record["counts"]
    assert counts == {"rows_in": 240, "rows_out": 240, "rejected": {}}
    tables = {s: split_table(output, s) for s in ("train", "dev", "test")}
    assert sum(t.num_rows for t in tables.values()) == 240
    t = tables["train"]
    assert t.column_names == ["id", "text", "label", "rating", "group", "date", "source"]
    assert str(t.schema.field("rating").type) == "double"
    row = t.slice(0, 1).to_pylist()[0]
    assert row["source"].startswith("reviews.csv:") and row["group"].startswith("p")
    assert set(t.column("label").to_pylist()) <= {"negative", "neutral", "positive"}
    groups = {s: set(tbl.column("group").to_pylist()) for s, tbl in tables.items()}
    assert not (groups["train"] & groups["dev"]) and not (groups["train"] & groups["test"]) \
        and not (groups["dev"] & groups["test"])
    assert tables["dev"].num_rows > 0 and tables["test"].num_rows > 0
    # Raw text is kept exactly (normalize is the next stage).
    by_id = {r["id"]: r for tbl in tables.values() for r in tbl.to_pylist()}
    assert by_id["1000"]["text"] == "최악이에요 돈 아까움 상품0 후기0" and by_id["1000"]["label"] == "negative"
    assert by_id["1000"]["source"] == "reviews.csv:2"


def test_dataset_card_has_yaml_header_and_measured_numbers(tmp_path):
    src = write_csv(tmp_path / "reviews.csv", sample_rows())
    output, record = ingest(tmp_path, input=str(src), license="cc-by-4.0", name="test reviews")
    card = (output / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "cc-by-4.0" and meta["language"] == ["ko"]
    splits = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert splits == {"train": record["stats"]["splits"]["train"]["rows"],
                      "validation": record["stats"]["splits"]["dev"]["rows"],
                      "test": record["stats"]["splits"]["test"]["rows"]}
    assert "sha256:" in card and "## Rows dropped" in card and "| 5 | 48 |" in card  # stars histogram
    assert record["stats"]["rating_histogram"] == {str(s): 48 for s in range(1, 6)}
    from huggingface_hub import DatasetCard

    data = DatasetCard.load(output / "README.md").data  # the Hub's own parser reads it back
    assert data.task_ids == ["sentiment-classification"] and data.pretty_name == "test reviews"


def test_dataset_card_split_sizes_load_without_a_datasets_warning(tmp_path, caplog):
    """datasets reads the card's split list only when each split has num_bytes; without it every
    load_dataset(folder) warns "Ignoring part of dataset_info" and drops the list."""
    import datasets
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard

    src = write_csv(tmp_path / "reviews.csv", sample_rows())
    output, record = ingest(tmp_path, input=str(src))
    info = DatasetInfosDict.from_dataset_card_data(DatasetCard.load(output / "README.md").data)["default"]
    splits = record["stats"]["splits"]
    names = {"train": "train", "validation": "dev", "test": "test"}
    assert {n: s.num_examples for n, s in info.splits.items()} == {n: splits[s]["rows"] for n, s in names.items()}
    assert info.download_size == sum((output / f"{s}.parquet").stat().st_size for s in names.values())
    datasets.utils.logging.enable_propagation()  # datasets' logger does not reach caplog otherwise
    try:
        with caplog.at_level("WARNING"):
            loaded = datasets.load_dataset(str(output), cache_dir=str(tmp_path / "hf"))
    finally:
        datasets.utils.logging.disable_propagation()
    assert "dataset_info" not in caplog.text
    for name, split in info.splits.items():
        # num_bytes is the Arrow size datasets itself measures (within the validity bitmaps it skips)
        assert split.num_bytes == pytest.approx(loaded[name].data.nbytes, rel=0.02)
        assert loaded[name].num_rows == split.num_examples
    # #15 item 8: the label is a ClassLabel for datasets users, names kept for pandas readers
    label = loaded["train"].features["label"]
    assert isinstance(label, datasets.ClassLabel) and label.names == ["negative", "neutral", "positive"]
    import pandas as pd

    names = pd.read_parquet(output / "train.parquet")["label"].tolist()
    assert [label.int2str(i) if i is not None else None for i in loaded["train"]["label"]] == names


def test_bad_rows_are_rejected_with_file_line_and_reason(tmp_path):
    rows = sample_rows(n_items=10, per_item=4)
    good = len(rows)
    lines = [",".join(HEADER)] + [",".join(r) for r in rows]
    bad = [
        "9001,product,p1,5,2024-01-01,",                      # empty text
        "9002,product,p1,5,2024-01-01,   ",                   # whitespace only
        "9003,product,p1,6,2024-01-01,별이 여섯 개",           # out of range
        "9004,product,p1,다섯,2024-01-01,숫자가 아닌 별점",     # non-numeric
        "9005,product,p1,,2024-01-01,별점 없음",                 # missing rating
        "9006,product,p1,5,2024-01-01,필드가,너무,많음",          # wrong field count
        '9007,product,p1,5,2024-01-01,"닫히지 않은 따옴표',       # unbalanced quote
        "1000,product,p1,5,2024-01-01,아이디가 중복된 리뷰",       # duplicate id (1000 is row 1)
        "9009,product,p1,5,2024-01-01," + "가" * 1_000_000,     # 1 MB line
    ]
    data = ("\n".join(lines + bad) + "\n").encode() + b"9010,product,p1,5,2024-01-01,\xc3\x28 broken\n"
    src = tmp_path / "bad.csv"
    src.write_bytes(data)
    output, record = ingest(tmp_path, input=str(src), max_record_lines=3)
    counts = record["counts"]
    assert counts["rows_in"] == good + len(bad) + 1
    assert counts["rows_in"] == counts["rows_out"] + sum(counts["rejected"].values())
    assert counts["rejected"] == {"empty_text": 2, "rating_out_of_range": 1, "rating_invalid": 1,
                                  "rating_missing": 1, "wrong_field_count": 1, "unbalanced_quote": 1,
                                  "duplicate_id": 1, "too_long": 1, "invalid_utf8": 1}
    rej = {}
    for r in rejected(output):
        rej.setdefault(r["reason"], r)
    first_bad = good + 2  # header is line 1
    assert rej["empty_text"]["line"] == first_bad and rej["empty_text"]["file"] == str(src)
    assert rej["rating_out_of_range"]["column"] == "rating" and "outside 1-5" in rej["rating_out_of_range"]["detail"]
    assert rej["unbalanced_quote"]["line"] == first_bad + 6 and rej["unbalanced_quote"]["column"] == 30
    assert rej["duplicate_id"]["duplicate_of"] == "bad.csv:2"
    assert rej["too_long"]["line"] == first_bad + 8 and len(rej["too_long"]["text"]) <= 200
    assert rej["invalid_utf8"]["line"] == first_bad + 9
    assert counts["rows_out"] == good


def test_duplicates_are_removed_before_splitting(tmp_path):
    rows = sample_rows(n_items=20, per_item=5)
    assert rows[4][3] == "5" and rows[9][3] == "1"
    # The same review again on other items: verbatim, re-spaced with "!!", and once with the
    # opposite rating (a 1-1 tie, so both copies go).
    rows += [["8001", "product", "p3", "5", "2024-01-03", rows[4][5]],
             ["8002", "product", "p7", "5", "2024-01-03", rows[4][5].replace(" ", "") + "!!"],
             ["8003", "product", "p9", "5", "2024-01-03", rows[9][5] + "..."]]
    output, record = ingest(tmp_path, input=str(write_csv(tmp_path / "r.csv", rows)))
    assert record["counts"]["rejected"] == {"duplicate_exact": 1, "duplicate_near": 1, "duplicate_label_conflict": 2}
    texts = [t for s in ("train", "dev", "test") for t in split_table(output, s).column("text").to_pylist()]
    assert texts.count(rows[4][5]) == 1 and rows[9][5] not in texts and len(texts) == 99
    conflict = [r for r in rejected(output) if r["reason"] == "duplicate_label_conflict"]
    assert sorted(r["line"] for r in conflict) == [11, 104] and all("duplicate_of" not in r for r in conflict)


def test_duplicates_with_conflicting_labels_dropped_entirely(tmp_path):
    rows = sample_rows(n_items=20, per_item=5)
    rows += [["8001", "product", "p3", "1", "2024-01-03", rows[4][5]]]  # rows[4] has 5 stars
    output, record = ingest(tmp_path, input=str(write_csv(tmp_path / "r.csv", rows)), on_label_conflict="drop")
    assert record["counts"]["rejected"] == {"duplicate_label_conflict": 2}


def test_dedup_none_keeps_duplicates(tmp_path):
    rows = sample_rows(n_items=5, per_item=4)
    rows.append(["7777"] + rows[0][1:])
    _, record = ingest(tmp_path, input=str(write_csv(tmp_path / "r.csv", rows)), dedup="none")
    assert record["counts"]["rows_out"] == 21


def test_missing_text_column_names_the_columns_that_exist(tmp_path):
    src = write_csv(tmp_path / "r.csv", [["1", "5", "좋다"]], header=["id", "stars", "body_text"])
    with pytest.raises(StageError, match=r"no text column .*columns: id, stars, body_text"):
        ingest(tmp_path, input=str(src))
    with pytest.raises(StageError, match=r"no column 'comment' for --text-column; columns: id, stars, body_text"):
        ingest(tmp_path, input=str(src), text_column="comment", out="out2")


def test_empty_file_header_only_and_missing_path(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(StageError, match="no records"):
        ingest(tmp_path, input=str(empty), out="o1")
    with pytest.raises(StageError, match="no records"):
        ingest(tmp_path, input=str(write_csv(tmp_path / "h.csv", [])), out="o2")
    with pytest.raises(FileNotFoundError, match="no such file.*--format datasets"):
        ingest(tmp_path, input=str(tmp_path / "nope.csv"), out="o3")


def test_all_rows_rejected_is_an_error_pointing_at_the_reasons(tmp_path):
    src = write_csv(tmp_path / "r.csv", [["1", "x", "p", "11", "", "별점이 범위 밖"]])
    with pytest.raises(StageError, match=r"all 1 records were rejected .*rating_out_of_range.*rejected.jsonl"):
        ingest(tmp_path, input=str(src))
    assert json.loads((tmp_path / "out.partial" / "rejected.jsonl").read_text())["line"] == 2


def test_label_scheme_is_required(tmp_path):
    src = write_csv(tmp_path / "r.csv", sample_rows(2, 2))
    with pytest.raises(StageError, match="--label-scheme is required"):
        ingest(tmp_path, input=str(src), label_scheme=None)


def test_jsonl_gz_with_label_column_and_map(tmp_path):
    src = tmp_path / "r.jsonl.gz"
    with gzip.open(src, "wt", encoding="utf-8") as fh:
        for i in range(60):
            fh.write(json.dumps({"id": i, "document": f"리뷰 번호 {i}", "label": i % 2}, ensure_ascii=False) + "\n")
        fh.write(json.dumps({"id": 99, "document": "라벨이 이상함", "label": 7}, ensure_ascii=False) + "\n")
        fh.write("{not json\n")
        fh.write(json.dumps({"id": 98, "label": 1}) + "\n")
        fh.write('{"id": 97, "document": "lone \\ud800 surrogate", "label": 1}\n')  # valid JSON, not UTF-8-able
    output, record = ingest(tmp_path, input=str(src), label_scheme="column",
                            label_map={"0": "negative", "1": "positive"})
    assert record["counts"]["rejected"] == {"label_unmapped": 1, "invalid_json": 1, "missing_field": 1,
                                            "invalid_utf8": 1}
    labels = [x for s in ("train", "dev", "test") for x in split_table(output, s).column("label").to_pylist()]
    assert labels.count("negative") == 30 and labels.count("positive") == 30
    # no group column: split row by row, stratified
    assert record["stats"]["splits"]["dev"]["rows_without_group"] == 6


def test_unlabeled_directory_of_mixed_files(tmp_path):
    import pyarrow as pa

    d = tmp_path / "corpus"
    (d / "more").mkdir(parents=True)
    write_csv(d / "a.csv", [[str(i), f"첫 파일 문장 {i}"] for i in range(10)], header=["id", "text"])
    (d / "more" / "b.jsonl").write_text("".join(
        json.dumps({"id": f"b{i}", "text": f"둘째 파일 문장 {i}"}, ensure_ascii=False) + "\n" for i in range(10)))
    pq.write_table(pa.table({"id": [f"c{i}" for i in range(10)], "text": [f"셋째 문장 {i}" for i in range(10)]}),
                   d / "c.parquet")
    output, record = ingest(tmp_path, input=str(d), label_scheme="none", dev_fraction=0.2, test_fraction=0.0)
    assert record["counts"]["rows_out"] == 30
    train = split_table(output, "train").to_pylist()
    assert all(r["label"] is None for r in train)
    assert {r["source"].rsplit(":", 1)[0] for r in train} == {"a.csv", "more/b.jsonl", "c.parquet"}
    assert split_table(output, "test").num_rows == 0
    assert [s["name"] for s in record["stats"]["sources"]] == ["a.csv", "c.parquet", "more/b.jsonl"]
    _, only_jsonl = ingest(tmp_path, out="o2", input=str(d), format="jsonl", label_scheme="none")
    assert only_jsonl["counts"]["rows_in"] == 10
    with pytest.raises(StageError, match="no tsv files"):
        ingest(tmp_path, out="o3", input=str(d), format="tsv", label_scheme="none")


def test_datasets_builder_input(tmp_path, capsys, monkeypatch):
    src = write_csv(tmp_path / "r.csv", sample_rows(10, 4))
    output, record = ingest(tmp_path, input="csv", format="datasets", data_files=[str(src)])
    assert record["counts"]["rows_out"] == 40
    assert split_table(output, "train").column("source")[0].as_py().startswith("csv[train]:")
    assert not (output / ".hf_cache").exists()
    assert "not pinned" not in capsys.readouterr().out  # a local builder has no revision to pin
    from kopretrain.data import sources

    def offline(*args, **kwargs):
        raise FileNotFoundError("offline")

    monkeypatch.setattr(sources, "load_dataset", offline)
    with pytest.raises(FileNotFoundError):
        ingest(tmp_path, out="hub", input="me/reviews", format="datasets")
    assert "me/reviews is not pinned; set --revision" in capsys.readouterr().out


def test_composite_group_and_explicit_columns(tmp_path):
    rows = [[str(i), "movie" if i % 2 else "app", "7", "5", "", f"같은 번호 다른 도메인 {i}"] for i in range(40)]
    output, _ = ingest(tmp_path, input=str(write_csv(tmp_path / "r.csv", rows)), group_column="domain,item_id",
                       date_column="none")
    groups = {r["group"] for s in ("train", "dev", "test") for r in split_table(output, s).to_pylist()}
    assert groups == {"movie/7", "app/7"}


def test_config_validation_names_the_flag():
    with pytest.raises(ConfigError, match="--dev-fraction"):
        from_dict(IngestConfig, {"dev_fraction": 1.5})
    with pytest.raises(ConfigError, match="--positive-min"):
        from_dict(IngestConfig, {"label_scheme": "thresholds", "rating_min": 0, "rating_max": 5, "negative_max": 2})
    with pytest.raises(ConfigError, match="label_scheme"):
        from_dict(IngestConfig, {"label_scheme": "stars10"})


def test_cli_and_skip_when_up_to_date(tmp_path, capsys):
    src = write_csv(tmp_path / "r.csv", sample_rows(10, 4))
    out = tmp_path / "cli-out"
    argv = ["ingest", "--input", str(src), "--label-scheme", "stars5", "--seed", "3", "--output", str(out)]
    assert main(argv) == 0
    assert read_stage(out)["config"]["seed"] == 3 and (out / "train.parquet").is_file()
    assert main(argv) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["ingest", "--input", str(tmp_path / "missing.csv"), "--label-scheme", "nsmc",
                 "--output", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_bundled_sample(sample_path, tmp_path):
    output, record = ingest(tmp_path, input=str(sample_path))
    c = record["counts"]
    assert c["rows_in"] == c["rows_out"] + sum(c["rejected"].values()) and c["rows_out"] > 0
    assert record["stats"]["columns"]["group"] == ["item_id"]


@pytest.mark.nsmc
def test_nsmc_head(nsmc_path, tmp_path):
    head = tmp_path / "nsmc-head.jsonl.gz"
    with gzip.open(nsmc_path, "rb") as src, gzip.open(head, "wb") as dst:
        dst.writelines(itertools.islice(src, 20_000))
    output, record = ingest(tmp_path, input=str(head), label_scheme="nsmc")
    c = record["counts"]
    assert c["rows_in"] == 20_000 == c["rows_out"] + sum(c["rejected"].values())
    assert record["stats"]["columns"] == {"text": ["review"], "id": ["review_id"], "rating": ["rating"],
                                          "group": ["movie_id"], "date": ["date"]}
    movies = {s: set(split_table(output, s).column("group").to_pylist()) for s in ("train", "dev", "test")}
    assert not (movies["train"] & movies["dev"] or movies["train"] & movies["test"] or movies["dev"] & movies["test"])
    dev = record["stats"]["splits"]["dev"]["rows"] / c["rows_out"]
    assert 0.08 < dev < 0.12


@pytest.mark.parametrize("max_rows", [1, 10])
def test_max_rows_reads_exactly_that_many_records(tmp_path, max_rows):
    rows = sample_rows(n_items=5, per_item=4)
    output, record = ingest(tmp_path, input=str(write_csv(tmp_path / "r.csv", rows)), max_rows=max_rows)
    assert record["counts"]["rows_in"] == max_rows
    assert record["counts"]["rows_out"] == max_rows
    ids = sorted(i for s in ("train", "dev", "test") for i in split_table(output, s).column("id").to_pylist())
    assert ids == sorted(r[0] for r in rows[:max_rows])  # the first max_rows records, in file order


def test_dedup_exact_removes_verbatim_copies_but_keeps_near_duplicates(tmp_path):
    rows = sample_rows(n_items=20, per_item=5)
    near = rows[4][5].replace(" ", "") + "!!"
    rows += [["8001", "product", "p3", "5", "2024-01-03", rows[4][5]],   # verbatim copy
             ["8002", "product", "p7", "5", "2024-01-03", near]]         # near copy: kept in exact mode
    output, record = ingest(tmp_path, input=str(write_csv(tmp_path / "r.csv", rows)), dedup="exact")
    assert record["counts"]["rejected"] == {"duplicate_exact": 1}
    assert record["counts"]["rows_out"] == 101
    texts = [t for s in ("train", "dev", "test") for t in split_table(output, s).column("text").to_pylist()]
    assert texts.count(rows[4][5]) == 1 and near in texts
    # The same file with the default near dedup does drop it: the fixture tells the modes apart.
    _, near_record = ingest(tmp_path, out="near", input=str(tmp_path / "r.csv"))
    assert near_record["counts"]["rejected"] == {"duplicate_exact": 1, "duplicate_near": 1}
