"""Hostile inputs: every stage that reads user files either finishes with counts that add up or
stops with exit code 2 and one `kopretrain: error:` line. Never a traceback, never a changed input,
never a half-written `.partial` left behind by bad input."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from kopretrain.cli import main

HEADER = "review_id,item_id,rating,review\n"


def _rows(n: int = 40) -> str:
    return "".join(f"{i},p{i % 8},{i % 5 + 1},리뷰 {i} {'최고' if i % 2 else '별로'}예요\n" for i in range(n))


def hostile_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    good = HEADER + _rows()
    files = {
        "invalid_utf8.csv": good.encode() + b"99,p1,3,\xff\xfe broken bytes\n",
        "broken_quotes.csv": (good + '98,p1,4,"이 따옴표는 닫히지 않음\n97,p2,5,정상\n').encode(),
        "extra_fields.csv": (good + "96,p1,4,좋아요,extra,fields\n").encode(),
        "repeated_header.csv": (good + HEADER + _rows(5)).encode(),
        "empty.csv": b"",
        "header_only.csv": HEADER.encode(),
        "huge_text.csv": (good + "95,p3,5," + "가" * 1_000_000 + "\n").encode(),
        "binary.csv": bytes(range(256)) * 40,
        "bad_rating.csv": (good + "94,p1,abc,평점이 글자\n93,p1,,평점 없음\n").encode(),
        "bad_jsonl.jsonl": "\n".join([json.dumps({"review_id": 1, "item_id": "a", "rating": 5, "review": "최고"},
                                                 ensure_ascii=False), "{not json", "[1, 2]", '{"review": 3}', ""]).encode(),
    }
    paths = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths[name] = folder / name
    truncated = gzip.compress(good.encode() * 50)
    (folder / "truncated.csv.gz").write_bytes(truncated[: len(truncated) // 2])
    paths["truncated.csv.gz"] = folder / "truncated.csv.gz"
    return paths


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_outcome(code: int, err: str, out_dir: Path) -> None:
    assert "Traceback" not in err
    if code == 0:
        return
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("kopretrain:")]
    assert len(lines) == 1 and "error" in lines[0], err
    assert not Path(f"{out_dir}.partial").exists()  # nothing half-written left behind


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return hostile_files(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("name", ["invalid_utf8.csv", "broken_quotes.csv", "extra_fields.csv", "repeated_header.csv",
                                  "empty.csv", "header_only.csv", "huge_text.csv", "binary.csv", "bad_rating.csv",
                                  "bad_jsonl.jsonl", "truncated.csv.gz"])
def test_ingest(files, name, tmp_path, capsys):
    src = files[name]
    before = digest(src)
    out = tmp_path / "out"
    code = main(["ingest", "--input", str(src), "--label-scheme", "stars5", "--text-column", "review",
                 "--rating-column", "rating", "-o", str(out)])
    check_outcome(code, capsys.readouterr().err, out)
    assert digest(src) == before
    if code == 0:
        counts = json.loads((out / "stage.json").read_text())["counts"]
        assert counts["rows_in"] == counts["rows_out"] + sum(counts["rejected"].values())


@pytest.mark.parametrize("name", ["invalid_utf8.csv", "extra_fields.csv", "repeated_header.csv", "empty.csv",
                                  "header_only.csv", "binary.csv", "bad_rating.csv", "bad_jsonl.jsonl",
                                  "truncated.csv.gz"])
def test_label(files, name, tmp_path, capsys):
    from kopretrain.testing import tiny_classifier

    model = tiny_classifier(tmp_path / "model")
    src = files[name]
    before = digest(src)
    out = tmp_path / "labeled.parquet"
    code = main(["label", "--model", str(model), "--input", str(src), "--text-column", "review", "--no-progress",
                 "-o", str(out)])
    err = capsys.readouterr().err
    check_outcome(code, err, out)
    assert digest(src) == before
    if name == "truncated.csv.gz":  # the message names the file
        assert code == 2 and f"{src}: truncated or corrupt" in err


@pytest.mark.parametrize("text, message", [
    ("workdir: x\ningest: [1, 2\n", "not valid YAML (line 3"),
    ("workdir: !!python/object:os.system x\n", "could not determine a constructor"),
    ("workdir: x\nworkdir: y\n", "'workdir' appears twice"),
    ("workdir: x\n\ningest:\n  input: a\n  seed: 1\n  seed: 2\n", "'seed' appears twice in one mapping (lines 5 and 6)"),
    ("workdir: x\nfinetune: 3\n", "'finetune' must be a mapping"),
])
def test_pipeline_yaml(tmp_path, capsys, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    assert main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_set_values_and_encoding(tmp_path, capsys):
    quick = Path(__file__).resolve().parent.parent / "pipelines" / "quickstart.yaml"
    assert main(["run", str(quick), "--dry-run", "--set", "finetune.epochs=[1"]) == 2
    assert "--set finetune.epochs=[1: not valid YAML" in capsys.readouterr().err
    assert main(["run", str(quick), "--dry-run", "--set", "evaluat.baseline=false"]) == 2
    assert "--set evaluat...: unknown key 'evaluat' (did you mean 'evaluate'?)" in capsys.readouterr().err  # not the YAML
    assert main(["ingest", "--input", "x.csv", "--label-scheme", "stars5", "--encoding", "nope", "-o",
                 str(tmp_path / "o")]) == 2
    assert "unknown encoding 'nope'" in capsys.readouterr().err


def test_label_keeps_a_broken_jsonl_line_in_its_row(files, tmp_path):
    """A line that is not a JSON object stays in place with its original text, so it can be traced
    and fixed (it used to come out as an all-null row)."""
    import pandas as pd

    from kopretrain.testing import tiny_classifier

    model = tiny_classifier(tmp_path / "model")
    out = tmp_path / "labeled.parquet"
    assert main(["label", "--model", str(model), "--input", str(files["bad_jsonl.jsonl"]), "--text-column", "review",
                 "--no-progress", "-o", str(out)]) == 0
    df = pd.read_parquet(out)
    assert [None if pd.isna(v) else v for v in df["label_error"]] == [None, "invalid_json", "invalid_json", "not_text"]
    assert list(df["review"])[1:3] == ["{not json", "[1, 2]"]
    assert df["label"].isna().tolist() == [False, True, True, True]


@pytest.mark.parametrize("quoting", [[], ["--no-csv-quoting"]])
def test_label_keeps_a_malformed_csv_line_and_labels_every_other_row(files, tmp_path, quoting):
    """One line with extra fields used to abort label for the whole file (after earlier chunks were
    done), with or without --no-csv-quoting; now it is kept in place, flagged, with its raw text."""
    import pandas as pd

    from kopretrain.testing import tiny_classifier

    model = tiny_classifier(tmp_path / "model")
    out = tmp_path / "labeled.csv"
    src = files["extra_fields.csv"]  # 40 good rows, then "96,p1,4,좋아요,extra,fields"
    assert main(["label", "--model", str(model), "--input", str(src), "--text-column", "review", "--no-progress",
                 "--chunk-size", "16", *quoting, "-o", str(out)]) == 0
    df = pd.read_csv(out, dtype=object, keep_default_na=False)
    assert len(df) == 41 and list(df["review_id"][:40]) == [str(i) for i in range(40)]
    assert (df["label"][:40] != "").all() and (df["label_error"][:40] == "").all()
    assert df["label_error"][40] == "wrong_field_count" and df["label"][40] == ""
    assert df["review"][40] == "96,p1,4,좋아요,extra,fields"


def test_an_empty_dev_or_test_split_is_said_aloud(tmp_path, capsys):
    src = tmp_path / "tiny.csv"
    src.write_text(HEADER + "1,p1,5,최고예요\n2,p1,1,최악이에요\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["ingest", "--input", str(src), "--label-scheme", "stars5", "--group-column", "item_id",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "warning: the dev split is empty" in printed and "warning: the test split is empty" in printed
    assert len(json.loads((out / "stage.json").read_text())["stats"]["warnings"]) == 2


def test_text_after_a_closing_quote_is_rejected_not_rewritten(tmp_path):
    """`"좋아"요` used to come out as 좋아요 (quotes dropped, text silently altered); now the row is
    rejected as broken_quotes with its line, and the rows around it are kept."""
    src = tmp_path / "q.csv"
    src.write_text(HEADER + _rows(10) + '10,p1,5,"좋아"요 최고\n11,p2,4,"따옴표 ""안""에 있음",\n'.replace(",\n", "\n")
                   + "12,p3,1,별로\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["ingest", "--input", str(src), "--label-scheme", "stars5", "--text-column", "review",
                 "--rating-column", "rating", "--dedup", "none", "-o", str(out)]) == 0
    record = json.loads((out / "stage.json").read_text())
    assert record["counts"]["rejected"] == {"broken_quotes": 1} and record["counts"]["rows_out"] == 12
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert rejected[0]["line"] == 12 and rejected[0]["reason"] == "broken_quotes"
    import pyarrow.parquet as pq

    texts = [t for s in ("train", "dev", "test") if (out / f"{s}.parquet").exists()
             for t in pq.read_table(out / f"{s}.parquet")["text"].to_pylist()]
    assert '따옴표 "안"에 있음' in texts and "좋아요 최고" not in texts


def test_environment_errors_become_one_line(tmp_path, monkeypatch, capsys):
    """A read-only output folder (root ignores chmod here, so the error is injected) ends in one line."""
    import kopretrain.runs.records as records
    from kopretrain.runs.records import input_error

    assert "permission denied: /srv/out" in input_error(PermissionError(13, "Permission denied", "/srv/out"))
    assert input_error(RuntimeError("a bug")) is None  # bugs keep their traceback

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self.dir))

    monkeypatch.setattr(records.StageRun, "_open_partial", denied)
    src = tmp_path / "r.csv"
    src.write_text(HEADER + _rows(5), encoding="utf-8")
    assert main(["ingest", "--input", str(src), "--label-scheme", "stars5", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("kopretrain: error: permission denied:") and "Traceback" not in err


def test_label_uses_the_length_the_model_was_trained_with(tmp_path):
    """#15.7: label used 128 tokens where the model was fine-tuned at 64; 0 (the default) now means
    the recorded length, and an explicit --max-length still wins."""
    from kopretrain import label as L
    from kopretrain.testing import tiny_classifier

    model = tiny_classifier(tmp_path / "model", textprep={"extra": {"max_length": 16}})
    src = tmp_path / "in.csv"
    src.write_text("text\n좋아요\n", encoding="utf-8")
    assert L._load(L.LabelConfig(model=str(model), input=str(src))).clf.max_length == 16
    assert L._load(L.LabelConfig(model=str(model), input=str(src), max_length=8)).clf.max_length == 8
