"""analyze: morpheme columns, offsets into text, placeholders, empty and very long inputs."""

from __future__ import annotations

import json

import pytest

from kopretrain.analyze import AnalyzeConfig, analyze_texts
from kopretrain.cli import main
from kopretrain.runs.config import ConfigError, from_dict
from kopretrain.text.rules import PLACEHOLDER_TOKENS
from tests.fixtures.data import read_split, write_stage_dir

# Tags whose form is the surface text itself (no conjugation/allomorph restoring).
SURFACE_TAGS = {"NNG", "NNP", "SL", "SN", "SW", "SF", "SH", "W_URL", "W_EMAIL", "W_SERIAL", "W_MENTION",
                "W_EMOJI", "W_HASHTAG"}


@pytest.fixture(scope="module")
def kiwi():
    from kopretrain.text.kiwi import get_kiwi

    return get_kiwi(0, "none")


def analyze(kiwi, texts):
    return list(analyze_texts(kiwi, texts))


def assert_offsets_valid(text, forms, tags, starts, lens):
    assert len(forms) == len(tags) == len(starts) == len(lens)
    for form, tag, start, length in zip(forms, tags, starts, lens):
        assert 0 <= start and start + length <= len(text), (form, tag, start, length)
        if tag in SURFACE_TAGS:
            assert text[start:start + length] == form, (form, tag, text[start:start + length])


def test_offsets_point_into_text(kiwi):
    text = "배송 빨랐어욬ㅋㅋ 100000원 결제함. 👍 Good!!"
    ((forms, tags, starts, lens),) = analyze(kiwi, [text])
    assert_offsets_valid(text, forms, tags, starts, lens)
    got = list(zip(forms, tags, starts, lens))
    assert ("배송", "NNG", 0, 2) in got
    assert ("ㅋㅋ", "SW", 7, 2) in got
    assert ("100000", "SN", 10, 6) in got
    assert ("👍", "W_EMOJI", text.index("👍"), 1) in got
    # A conjugated form points at the syllable it came from: 빨 -> 빠르/VA.
    i = forms.index("빠르")
    assert tags[i] == "VA" and text[starts[i]:starts[i] + lens[i]] == "빨"


def test_placeholders_are_single_morphemes(kiwi):
    text = "링크[URL]참고 [EMAIL]로 [USER]님 [PHONE] [CENSORED]같은 [EMOJI][EMOJI]좋아요"
    ((forms, tags, starts, lens),) = analyze(kiwi, [text])
    assert_offsets_valid(text, forms, tags, starts, lens)
    found = {f: t for f, t in zip(forms, tags) if f.startswith("[")}
    assert set(found) == set(PLACEHOLDER_TOKENS)
    assert found == {"[URL]": "W_URL", "[EMAIL]": "W_EMAIL", "[USER]": "W_MENTION", "[PHONE]": "W_SERIAL",
                     "[CENSORED]": "NNG", "[EMOJI]": "W_EMOJI"}
    assert forms.count("[EMOJI]") == 2 and "URL" not in forms


def test_empty_and_missing_text(kiwi):
    assert analyze(kiwi, ["", None, "   ", "최고"])[:3] == [([], [], [], [])] * 3


def test_order_is_input_order(kiwi):
    texts = [f"리뷰 {i}번 최고" for i in range(200)]
    for i, (forms, *_rest) in enumerate(analyze(kiwi, texts)):
        assert str(i) in forms


def test_long_digit_runs(kiwi):
    digits = "1" * 5000
    text = "가격은 " + digits + "원 ㅋㅋ"
    (bare, mixed) = analyze(kiwi, [digits, text])
    assert bare == ([digits], ["SN"], [0], [5000])
    forms, tags, starts, lens = mixed
    assert_offsets_valid(text, *mixed)
    i = tags.index("SN")
    assert (starts[i], lens[i]) == (4, 5000) and forms[i + 1] == "원" and starts[i + 1] == 5004


def test_100k_character_text(kiwi):
    text = ("배송 빨라요 ㅋㅋ 100000원 " * 6000)[:100_000]
    ((forms, tags, starts, lens),) = analyze(kiwi, [text])
    assert len(forms) > 20_000
    assert_offsets_valid(text, forms, tags, starts, lens)
    assert starts == sorted(starts)


def test_config_validation():
    with pytest.raises(ConfigError, match="num-workers"):
        from_dict(AnalyzeConfig, {"num_workers": -1}, prefix="analyze")
    assert AnalyzeConfig.WIRING == {"input": "normalize"}


def test_stage_end_to_end(tmp_path):
    texts = ["배송 빨랐어욬ㅋㅋ", "[URL] 참고 최고", "", "1" * 3000, "별로"]
    inp = write_stage_dir(tmp_path / "normalize", {"train": texts, "dev": ["최고의 영화"], "test": []})
    out = tmp_path / "analyze"
    assert main(["analyze", "--input", str(inp), "--output", str(out), "--chunk-rows", "2",
                 "--num-workers", "2"]) == 0
    rows = read_split(out, "train")
    assert [r["text"] for r in rows] == texts
    assert rows[0]["label"] == "positive" and rows[0]["source"] == "reviews.jsonl:1"
    for row in rows:
        assert_offsets_valid(row["text"] or "", row["morph_form"], row["morph_tag"], row["morph_start"],
                             row["morph_len"])
    assert rows[1]["morph_form"][0] == "[URL]" and rows[2]["morph_form"] == []
    assert rows[3]["morph_form"] == ["1" * 3000]
    assert read_split(out, "test") == []

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(out / "train.parquet")
    assert schema.field("morph_start").type == pa.list_(pa.int32())
    assert schema.field("morph_tag").type == pa.list_(pa.string())
    record = json.loads((out / "stage.json").read_text())
    assert record["counts"] == {"rows_in": 6, "rows_out": 6, "rejected": {}}
    stats = record["stats"]
    assert stats["texts_per_second"] > 0 and stats["num_workers"] == 2
    total = sum(len(r["morph_form"]) for r in rows) + len(read_split(out, "dev")[0]["morph_form"])
    assert stats["morphemes"] == total and stats["morphemes_per_text"] == pytest.approx(total / 6, abs=1e-3)
    assert stats["tags_top20"]["NNG"] >= 3 and len(stats["tags_top20"]) <= 20
    assert not list(out.glob(".*.stats.json")) and not list(out.glob("*.tmp"))


def test_reanalysis_replaces_morph_columns(tmp_path):
    inp = write_stage_dir(tmp_path / "n", {"train": ["최고의 영화"]})
    main(["analyze", "--input", str(inp), "--output", str(tmp_path / "a1")])
    main(["analyze", "--input", str(tmp_path / "a1"), "--output", str(tmp_path / "a2"), "--split-complex"])
    import pyarrow.parquet as pq

    names = pq.read_schema(tmp_path / "a2" / "train.parquet").names
    assert [n for n in names if n.startswith("morph_")] == ["morph_form", "morph_tag", "morph_start", "morph_len"]
    (row,) = read_split(tmp_path / "a2", "train")
    assert row["morph_form"][0] == "최고"


def test_interrupted_run_keeps_finished_splits(tmp_path, monkeypatch):
    from kopretrain import analyze as stage

    inp = write_stage_dir(tmp_path / "n", {"train": ["최고의 영화", "별로"], "dev": ["그냥 그래요"]})
    out = tmp_path / "a"
    real = stage._analyze_split
    calls = []

    def crash_on_dev(cfg, kiwi, path, dest, bar):
        calls.append(path.stem)
        if path.stem == "dev":
            raise KeyboardInterrupt
        return real(cfg, kiwi, path, dest, bar)

    monkeypatch.setattr(stage, "_analyze_split", crash_on_dev)
    assert main(["analyze", "--input", str(inp), "--output", str(out)]) == 130
    assert (tmp_path / "a.partial" / "train.parquet").is_file()
    calls.clear()
    monkeypatch.setattr(stage, "_analyze_split", lambda *a: calls.append(a[2].stem) or real(*a))
    assert main(["analyze", "--input", str(inp), "--output", str(out)]) == 0
    assert calls == ["dev"]  # train was finished before the interruption and is kept
    record = json.loads((out / "stage.json").read_text())
    assert record["resumed"] and record["counts"]["rows_out"] == 3
    assert record["stats"]["morphemes"] == sum(len(r["morph_form"]) for s in ("train", "dev")
                                               for r in read_split(out, s))


def test_a_text_column_that_is_not_text_is_named(tmp_path, capsys):
    """A hand-made input with numbers in 'text' ended in a kiwipiepy ValueError traceback."""
    import pandas as pd

    folder = tmp_path / "data"
    folder.mkdir()
    pd.DataFrame({"id": ["a", "b"], "text": [1, 2], "label": ["positive", "negative"]}).to_parquet(folder / "train.parquet")
    assert main(["analyze", "--input", str(folder), "-o", str(tmp_path / "out")]) == 2
    assert "column 'text' holds int64, not text" in capsys.readouterr().err
    assert not (tmp_path / "out.partial").exists()
    (folder / "train.parquet").write_bytes((folder / "train.parquet").read_bytes()[:200])  # truncated
    assert main(["analyze", "--input", str(folder), "-o", str(tmp_path / "out")]) == 2
    assert "train.parquet: not a readable Parquet file" in capsys.readouterr().err  # an ArrowInvalid traceback


def test_a_kiwipiepy_upgrade_reruns_analyze_and_later_stages_only_if_analyses_changed(tmp_path, capsys, monkeypatch):
    from importlib import metadata

    inp = write_stage_dir(tmp_path / "normalize", {"train": ["배송 빨랐어요 최고"]})
    out, after = tmp_path / "analyze", tmp_path / "after"

    def both() -> tuple[str, str]:
        capsys.readouterr()
        assert main(["analyze", "--input", str(inp), "-o", str(out)]) == 0
        first = capsys.readouterr().out
        assert main(["normalize", "--input", str(out), "-o", str(after)]) == 0  # any stage reading it
        return first, capsys.readouterr().out

    both()
    key = json.loads((out / "stage.json").read_text())["fingerprint"]
    installed = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "99.0" if name == "kiwipiepy" else installed(name))
    first, second = both()  # the same analyses from the "new" kiwipiepy: nothing after analyze reruns
    assert "up to date" not in first and "up to date" in second
    record = json.loads((out / "stage.json").read_text())
    assert record["behaviour"]["kiwipiepy"] == "99.0" and record["fingerprint"] == key
    assert all("up to date" in line for line in both())
