"""Normalizer (chain, counts, idempotence, filters) and the normalize stage end to end."""

from __future__ import annotations

import json
import random

import pytest

from kopretrain.cli import main
from kopretrain.runs.config import ConfigError, from_dict
from kopretrain.normalize import NormalizeConfig, Normalizer
from kopretrain.text.rules import PLACEHOLDER_TOKENS
from tests.fixtures.data import read_split, write_stage_dir

# Pieces that exercise every rule and their interactions, glued at random by the property test.
PIECES = [
    "배송 빨랐어욬", "ㅋㅋㅋㅋㅋ", "ㅠㅠㅠ", "와하하하하하", "!!!!!", "??", "......", "100000원", "1592-1598",
    "010-1234-5678", "01012345678", "02-123-4567", "http://blog.naver.com/abc/1", "www.a.co.kr",
    "abc@naver.com", "@영화광", "@_@", "@", "OOO", "OO", "GOOOOD", "XX", "○○○", "***", "*", "**",
    "시**", "😍😍😍", "👍🏻", "👨\u200d👩\u200d👧", "♥♥♥", "★★★☆☆", "\u200b", "\u200d", "\x07", "\r\n",
    "\u3000", "  ", "！", "＾＾", "\u110f\u110f", "\u1112\u1161\u11ab", "[URL]", "[EMOJI]", "[", "]", "최고",
    "별로", "good", "ㅡㅡ", "^^", "~", ".", "a", "O", "X", "0", "-", " ",
    "❤️", "🇰", "🇷", "1️⃣", "\ufe0f", "\u20e3", "🏻",
]


def random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 8))) for _ in range(n)]


def test_placeholders_exported():
    assert PLACEHOLDER_TOKENS == ["[URL]", "[EMAIL]", "[PHONE]", "[USER]", "[CENSORED]", "[EMOJI]"]


def test_normalize_chain_on_a_review():
    norm = Normalizer(NormalizeConfig())
    raw = "배송  빨랐어욬ㅋㅋㅋㅋ 100000원 결제!!!!! 문의 010-1234-5678 OOO놈\u200b 😍😍😍"
    assert norm.normalize(raw) == "배송 빨랐어욬ㅋㅋ 100000원 결제!! 문의 [PHONE] [CENSORED]놈 😍😍"
    assert norm.counts["whitespace"] == 1 and norm.counts["phone"] == 1
    assert norm.counts["repeat"] == 1 and norm.counts["invisible"] == 1
    assert norm.counts["url"] == 0


def test_emoji_keep_vs_map():
    text = "최고예요😍😍😍 👍"
    assert Normalizer(NormalizeConfig(emoji="keep")).normalize(text) == "최고예요😍😍 👍"
    assert Normalizer(NormalizeConfig(emoji="map")).normalize(text) == "최고예요[EMOJI][EMOJI] [EMOJI]"


def test_counts_count_texts_not_matches():
    norm = Normalizer()
    for text in ["ㅋㅋㅋㅋ 웃겨 ㅎㅎㅎㅎ", "별로", "!!!!!"]:
        norm.normalize(text)
    assert norm.counts["repeat"] == 2
    assert norm.examples["repeat"] == ("ㅋㅋㅋㅋ 웃겨 ㅎㅎㅎㅎ", "ㅋㅋ 웃겨 ㅎㅎ")


def test_skip_rules():
    norm = Normalizer(NormalizeConfig(skip_rules=["censor", "phone"]))
    assert norm.normalize("OO 010-1234-5678") == "OO 010-1234-5678"
    assert "censor" not in norm.counts
    with pytest.raises(ConfigError, match="skip-rules: unknown rule.*nope"):
        from_dict(NormalizeConfig, {"skip_rules": ["nope"]}, prefix="normalize")


@pytest.mark.parametrize("emoji", ["keep", "map"])
@pytest.mark.parametrize("max_repeat", [1, 2, 3])
def test_idempotent_on_random_texts(emoji, max_repeat):
    norm = Normalizer(NormalizeConfig(emoji=emoji, max_repeat=max_repeat))
    for text in random_texts(3000, seed=max_repeat):
        once = norm.normalize(text)
        assert norm.normalize(once) == once, (text, once)


@pytest.mark.parametrize("emoji", ["keep", "map"])
@pytest.mark.parametrize("max_repeat", [1, 2])
def test_idempotent_where_rules_meet(emoji, max_repeat):
    from tests.text.test_tokenizer_rules import HARD

    norm = Normalizer(NormalizeConfig(emoji=emoji, max_repeat=max_repeat))
    for text in HARD:
        once = norm.normalize(text)
        assert norm.normalize(once) == once, (text, once)


def test_idempotent_on_sample_reviews(sample_path):
    import csv

    norm = Normalizer(NormalizeConfig(emoji="map"))
    with open(sample_path, encoding="utf-8") as fh:
        texts = [row["review"] for row in csv.DictReader(fh)]
    assert len(texts) > 100
    changed = 0
    for text in texts:
        once = norm.normalize(text)
        changed += once != text
        assert norm.normalize(once) == once, text
    assert changed > 10  # the sample has deliberate noise: the rules must have fired


@pytest.mark.parametrize("text, reason", [
    ("", "empty"), (None, "empty"), ("   ", "empty"),
    ("최고", None), ("ㅋㅋ", None), ("별로", None), ("굿", None),
    ("good!!", None), ("👍", None), ("Two thumbs up!", None),
    ("[URL]", "placeholder_only"), ("[URL]!! [EMAIL]", "placeholder_only"),
    ("[URL] 최고", None), ("[CENSORED]", None), ("[EMOJI]", None),
    ("totally brainless stupid-ass ballbuster!", "too_little_hangul"),
    ("dl dudghk wjdakf wowlaTsp ch rhdgkwl", "too_little_hangul"),  # Korean typed on a Latin keyboard
    ("Tom Cruise 연기 최고 진짜 재밌어요", None),
    ("가" * 5001, "too_long"),
])
def test_check_reasons_with_defaults(text, reason):
    assert Normalizer().check(text) == reason


def test_check_thresholds_configurable():
    norm = Normalizer(NormalizeConfig(min_chars=3, max_chars=10, min_hangul_ratio=0.0, drop_placeholder_only=False))
    assert norm.check("최고") == "too_short"
    assert norm.check("최고다") is None
    assert norm.check("아주 아주 최고다") is None
    assert norm.check("아주 아주 아주 최고다") == "too_long"
    assert norm.check("[URL]") is None
    assert norm.check("totally brainless stupid-ass ballbuster!") == "too_long"
    assert Normalizer(NormalizeConfig(hangul_min_letters=3)).check("good!!") == "too_little_hangul"
    assert norm.reasons == {"too_short": 1, "too_long": 2}


@pytest.mark.parametrize("field, value", [("max_repeat", 0), ("min_hangul_ratio", 1.5), ("max_chars", 0),
                                          ("batch_size", 0), ("num_workers", -3), ("hangul_min_letters", -5)])
def test_config_validation_names_the_flag(field, value):
    with pytest.raises(ConfigError, match=field.replace("_", "-")):
        from_dict(NormalizeConfig, {field: value}, prefix="normalize")


def test_skip_rules_are_a_set():
    """--skip-rules censor,phone then phone,censor reran the stage."""
    assert NormalizeConfig(skip_rules=["phone", "censor", "phone"]).skip_rules == ["censor", "phone"]


def test_stage_end_to_end(tmp_path, capsys):
    inp = write_stage_dir(tmp_path / "ingest", {
        "train": ["배송 빨랐어욬ㅋㅋㅋㅋ", "100000원 결제했는데 별로!!!!!", "", "http://spam.example.com/x",
                  "최고", None, "good!!"],
        "dev": ["OOO놈의 쓰레기 영화", "totally brainless stupid-ass ballbuster!"],
        "test": [],
    })
    out = tmp_path / "normalize"
    assert main(["normalize", "--input", str(inp), "--output", str(out), "--batch-size", "3"]) == 0
    assert "texts changed per rule: repeat 2, " in capsys.readouterr().out  # the rule counts, largest first
    train = read_split(out, "train")
    assert [r["text"] for r in train] == ["배송 빨랐어욬ㅋㅋ", "100000원 결제했는데 별로!!", "최고", "good!!"]
    assert [r["text_raw"] for r in train] == ["배송 빨랐어욬ㅋㅋㅋㅋ", "100000원 결제했는데 별로!!!!!", "최고", "good!!"]
    assert train[0]["label"] == "positive" and train[0]["source"] == "reviews.jsonl:1"
    assert [r["text"] for r in read_split(out, "dev")] == ["[CENSORED]놈의 쓰레기 영화"]
    assert read_split(out, "test") == []

    record = json.loads((out / "stage.json").read_text())
    counts = record["counts"]
    assert counts["rows_in"] == 9
    assert counts["rejected"] == {"empty": 2, "placeholder_only": 1, "too_little_hangul": 1}
    assert counts["rows_in"] == counts["rows_out"] + sum(counts["rejected"].values())
    stats = record["stats"]
    assert stats["rules"]["repeat"] == 2 and stats["rules"]["censor"] == 1 and stats["rules"]["url"] == 1
    assert stats["splits"]["dev"] == {"rows_in": 2, "rows_out": 1}
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert {r["reason"] for r in rejected} == {"empty", "placeholder_only", "too_little_hangul"}
    spam = next(r for r in rejected if r["reason"] == "placeholder_only")
    assert spam["text"] == "http://spam.example.com/x" and spam["id"] == "r4" and spam["source"] == "reviews.jsonl:4"


def test_stage_twice_keeps_first_text_raw(tmp_path):
    inp = write_stage_dir(tmp_path / "ingest", {"train": ["ㅋㅋㅋㅋㅋ 웃김"]})
    main(["normalize", "--input", str(inp), "--output", str(tmp_path / "n1")])
    main(["normalize", "--input", str(tmp_path / "n1"), "--output", str(tmp_path / "n2"), "--max-repeat", "1"])
    (row,) = read_split(tmp_path / "n2", "train")
    assert row["text"] == "ㅋ 웃김" and row["text_raw"] == "ㅋㅋㅋㅋㅋ 웃김"


def test_inputs_a_user_makes_by_hand(tmp_path, capsys):
    """Numbers in 'text' and a truncated file gave tracebacks; a pandas category column passed
    and then failed analyze; analyze's offsets were copied beside the text they no longer fit."""
    import pandas as pd

    folder = tmp_path / "data"
    folder.mkdir()
    pd.DataFrame({"id": ["a"], "text": [1]}).to_parquet(folder / "train.parquet")
    assert main(["normalize", "--input", str(folder), "-o", str(tmp_path / "o1")]) == 2
    assert "column 'text' holds int64, not text" in capsys.readouterr().err
    (folder / "train.parquet").write_bytes((folder / "train.parquet").read_bytes()[:200])
    assert main(["normalize", "--input", str(folder), "-o", str(tmp_path / "o1")]) == 2
    assert "train.parquet: not a readable Parquet file" in capsys.readouterr().err
    pd.DataFrame({"id": ["a", "b"], "text": pd.Categorical(["ㅋㅋㅋㅋ 굿", "별로"])}).to_parquet(folder / "train.parquet")
    assert main(["normalize", "--input", str(folder), "-o", str(tmp_path / "o2")]) == 0
    assert main(["analyze", "--input", str(tmp_path / "o2"), "-o", str(tmp_path / "a")]) == 0
    assert [r["text"] for r in read_split(tmp_path / "o2", "train")] == ["ㅋㅋ 굿", "별로"]
    assert main(["normalize", "--input", str(tmp_path / "a"), "-o", str(tmp_path / "o3"), "--max-repeat", "1"]) == 0
    (row, _) = read_split(tmp_path / "o3", "train")
    assert row["text"] == "ㅋ 굿" and not any(k.startswith("morph_") for k in row)  # analyze again for them


def test_stage_without_input_fails_clearly(tmp_path, capsys):
    assert main(["normalize", "--output", str(tmp_path / "n")]) == 2
    assert "--input" in capsys.readouterr().err


def test_spacing_rule_is_batched_and_idempotent():
    norm = Normalizer(NormalizeConfig(spacing=True))
    texts = ["이영화정말재밌어요최고!!", "아버지가방에들어가신다ㅋㅋㅋㅋ", "[URL]참고하세요", ""]
    out = norm.normalize_many(texts)
    assert out[0] == "이 영화 정말 재밌어요 최고!!"
    assert out[1].startswith("아버지가 방에 들어가신다") and out[1].endswith("ㅋㅋ")
    assert "[URL]" in out[2] and out[3] == ""
    assert norm.counts["spacing"] >= 2
    assert norm.normalize_many(out) == out


def test_kiwi_rules_meet_placeholders_and_mentions():
    """typos crashed on a word glued to a placeholder (kiwi.join knows no W_PLACEHOLDER tag) and
    split a corrected word from its ㅋㅋ; spacing made "@영화광" a mention only on a second pass."""
    typos = Normalizer(NormalizeConfig(typos="basic"))
    out = typos.normalize_many(["OO잼있어요", "[URL]잼있어요", "잼있어요ㅋㅋㅋ", "잼있어요@kim"])
    assert out == ["[CENSORED]잼있어요", "[URL]잼있어요", "재밌어요ㅋㅋ", "재밌어요@kim"]
    assert typos.normalize_many(out) == out
    spacing = Normalizer(NormalizeConfig(spacing=True))
    out = spacing.normalize_many(["영화가재밌어요@영화광님말대로", "ㅋㅋ@놈놈놈@보다재밌다"])
    assert out[0] == "영화가 재밌어요 [USER]님 말대로" and "[USER]" in out[1]
    assert spacing.normalize_many(out) == out


@pytest.mark.slow
def test_typos_rule_fixes_only_corrected_words():
    norm = Normalizer(NormalizeConfig(typos="basic_with_continual"))
    out = norm.normalize_many(["정말 잼있어요 ㅋㅋ", "그게 다른게 좋아요", "내용도 괸찮고"])
    assert out[0] == "정말 재밌어요 ㅋㅋ"
    assert out[1] == "그게 다른게 좋아요"  # whole-text kiwi.join would give 그것이 ... 다른것이
    assert out[2] == "내용도 괜찮고"
    assert norm.normalize_many(out) == out


@pytest.mark.nsmc
def test_nsmc_slice_idempotent(nsmc_path):
    # Speed is measured by benchmarks/bench_data.py, not asserted here.
    import gzip

    with gzip.open(nsmc_path, "rt", encoding="utf-8") as fh:
        texts = [json.loads(line)["review"] for line, _ in zip(fh, range(20_000))]
    norm = Normalizer()
    out = [norm.normalize(t) for t in texts]
    assert all(norm.normalize(o) == o for o in out)


# ------------------------------------------------------------------ rules versions


@pytest.fixture
def chained(tmp_path):
    """normalize, and a stage reading it (analyze), both finished."""
    from kopretrain.text import probes

    probes._digest.cache_clear()
    inp = write_stage_dir(tmp_path / "ingest", {"train": ["ㅋㅋㅋㅋㅋ 웃김", "별로예요"]})
    first, second = tmp_path / "n1", tmp_path / "analyze"
    assert main(["normalize", "--input", str(inp), "-o", str(first)]) == 0
    assert main(["analyze", "--input", str(first), "-o", str(second)]) == 0
    yield inp, first, second
    probes._digest.cache_clear()


def _rerun(inp, first, second, capsys) -> tuple[str, str]:
    from kopretrain.text import probes

    probes._digest.cache_clear()
    capsys.readouterr()
    assert main(["normalize", "--input", str(inp), "-o", str(first)]) == 0
    out_first = capsys.readouterr().out
    assert main(["analyze", "--input", str(first), "-o", str(second)]) == 0
    return out_first, capsys.readouterr().out


def test_a_rule_change_reruns_normalize_and_only_changed_bytes_rerun_later_stages(chained, capsys, monkeypatch):
    from kopretrain.text import rules

    inp, first, second = chained
    before = json.loads((first / "stage.json").read_text())
    assert set(before["behaviour"]) == {"rules"}
    original = rules.censor
    # an upgrade whose censor rule changed, on nothing this corpus has: normalize reruns (it cannot
    # know until it looks), writes the same bytes and keeps its key, so the stage after it is up to date
    monkeypatch.setattr(rules, "censor", lambda text: original(text).replace("ZOO", "Z00"))
    out_first, out_second = _rerun(inp, first, second, capsys)
    assert "up to date" not in out_first and "up to date" in out_second
    after = json.loads((first / "stage.json").read_text())
    assert after["fingerprint"] == before["fingerprint"] and after["behaviour"] != before["behaviour"]
    assert len(after["aliases"]) == 1
    assert "up to date" in _rerun(inp, first, second, capsys)[0]  # the new key is its alias
    capsys.readouterr()
    assert main(["normalize", "--input", str(inp), "-o", str(first), "--force"]) == 0  # same bytes: same key
    assert json.loads((first / "stage.json").read_text())["fingerprint"] == before["fingerprint"]
    assert "up to date" in _rerun(inp, first, second, capsys)[1]
    # a change that does touch the corpus: a new output, and the stage after it reruns
    monkeypatch.setattr(rules, "censor", lambda text: original(text).replace("ZOO", "Z0").replace("웃김", "웃겨"))
    out_first, out_second = _rerun(inp, first, second, capsys)
    assert "up to date" not in out_first and "up to date" not in out_second
    assert json.loads((first / "stage.json").read_text())["fingerprint"] != before["fingerprint"]
    assert [r["text"] for r in read_split(second, "train")] == ["ㅋㅋ 웃겨", "별로예요"]  # analyze reran on it


@pytest.mark.parametrize("speed_keyed", [False, True])
def test_outputs_from_before_rules_digests_rerun_once_and_keep_their_readers(tmp_path, capsys, monkeypatch,
                                                                              speed_keyed):
    from kopretrain.runs import records
    from kopretrain.text import probes

    probes._digest.cache_clear()
    inp = write_stage_dir(tmp_path / "ingest", {"train": ["ㅋㅋㅋㅋㅋ 웃김"]})
    first, second = tmp_path / "n1", tmp_path / "analyze"
    monkeypatch.setattr(NormalizeConfig, "behaviour", lambda self: {})  # as the version before keyed it
    if speed_keyed:  # as versions before SPEED_FIELDS keyed it (still up to date through that key)
        keyed = records.fingerprint_config
        monkeypatch.setattr(records, "fingerprint_config", lambda cfg, config, **kw: keyed(cfg, config, speed=True))
    _rerun(inp, first, second, capsys)
    before = json.loads((first / "stage.json").read_text())
    assert "behaviour" not in before
    monkeypatch.undo()
    out_first, out_second = _rerun(inp, first, second, capsys)
    assert "up to date" not in out_first and "up to date" in out_second  # rules unknown: checked once
    after = json.loads((first / "stage.json").read_text())
    assert after["fingerprint"] == before["fingerprint"] and "rules" in after["behaviour"]
    assert "up to date" in _rerun(inp, first, second, capsys)[0]


def test_a_model_says_when_todays_rules_differ_from_its_training_text():
    import warnings

    from kopretrain.text import textprep
    from kopretrain.text.probes import rules_digest

    today = {"max_repeat": 2, "rules_digest": rules_digest({"max_repeat": 2})}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert textprep.TextPrep(normalize=today).prepare(["ㅋㅋㅋㅋ"]) == ["ㅋㅋ"]
    with pytest.warns(UserWarning, match="rules of another kopretrain version"):
        textprep.TextPrep(normalize={"max_repeat": 2, "rules_digest": "0" * 16}).prepare(["ㅋㅋㅋㅋ"])
