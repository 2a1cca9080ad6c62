import numpy as np
import pytest

from kopretrain.data.dedup import REASONS, duplicate_ids, exact_text, hash64, keys, near_text, resolve


def test_exact_text_collapses_whitespace_and_composes_hangul():
    decomposed = "\u1112\u1161\u11ab"  # 한 as conjoining jamo (NFD)
    assert exact_text(f"  {decomposed}국\n 영화  ") == "한국 영화"


def test_near_text_ignores_spacing_punctuation_case_and_repeats():
    assert near_text(exact_text("재밌어요 ㅋㅋㅋ!!")) == near_text(exact_text("재밌어요ㅋㅋ"))
    assert near_text("GOOD!!! 👍") == near_text("good")
    assert near_text("최고 최고") == "최고최고"  # a repeated word is not a repeated character


def test_near_text_keeps_digits_and_typos():
    assert near_text("100점") != near_text("10점")
    assert near_text("재밌어욬") != near_text("재밌어요")


def test_symbol_only_texts_fall_back_to_the_exact_key():
    assert near_text("^^;") == ""
    assert keys("^^;")[1] != keys("!!!")[1]
    assert keys("^^;") == (hash64(exact_text("^^;")),) * 2


def test_keys_are_stable_across_processes():
    # blake2b, not the per-process salted hash(): same text, same key in every run.
    assert isinstance(hash64("좋아요"), int)
    assert keys("좋아요  ") [0] == keys("좋아요")[0]
    # Fixed known values (8-byte blake2b of the UTF-8 text, signed): a salted hash() cannot match them.
    assert hash64("좋아요") == -4126316817718846860
    assert hash64("") == -5426141060434712860
    assert keys("재밌어요!!") == (1681775879151216294, 3947523553131975053)


def test_keys_agree_between_processes_with_different_hash_seeds():
    import os
    import subprocess
    import sys
    from pathlib import Path

    import kopretrain

    code = ("from kopretrain.data.dedup import hash64, keys; "
            "print(hash64('좋아요'), *keys('재밌어요!! 정말'), *keys('^^;'))")
    outputs = []
    for seed in ("1", "2"):
        root = str(Path(kopretrain.__file__).resolve().parents[1])  # this checkout's package, not another
        env = {**os.environ, "PYTHONHASHSEED": seed,
               "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.split())
    assert outputs[0] == outputs[1]
    here = [str(hash64("좋아요")), *map(str, keys("재밌어요!! 정말")), *map(str, keys("^^;"))]
    assert outputs[0] == here


def test_duplicate_ids_keep_the_first_row():
    dup, first = duplicate_ids([5, 7, 5, 9, 7, 5], [1, 1, 1, 1, 1, 1])
    assert dup.tolist() == [False, False, True, False, True, True]
    assert first.tolist() == [-1, -1, 0, -1, 1, 0]


def test_rows_without_id_are_never_duplicates():
    dup, _ = duplicate_ids([0, 0, 0], [0, 0, 1])
    assert not dup.any()


def codes(decision):
    return [REASONS[c] or "keep" for c in decision]


def test_resolve_exact_and_near_duplicates():
    texts = ["재밌어요", "재밌어요", "재밌어요!!", "별로"]
    ex = [keys(t)[0] for t in texts]
    nr = [keys(t)[1] for t in texts]
    decision, keeper = resolve(nr, ex, [2, 2, 2, 0], [True] * 4)
    assert codes(decision) == ["keep", "duplicate_exact", "duplicate_near", "keep"]
    assert keeper.tolist() == [-1, 0, 0, -1]


def test_exact_mode_keeps_near_duplicates():
    texts = ["재밌어요", "재밌어요!!"]
    ex = [keys(t)[0] for t in texts]
    decision, _ = resolve(ex, ex, [2, 2], [True, True])
    assert codes(decision) == ["keep", "keep"]


def test_label_conflict_majority_keeps_first_majority_row():
    k = [1, 1, 1, 1]
    decision, keeper = resolve(k, k, [1, 2, 2, 1 + 1], [True] * 4)
    assert codes(decision) == ["duplicate_label_conflict", "keep", "duplicate_exact", "duplicate_exact"]
    assert keeper.tolist() == [1, -1, 1, 1]


def test_label_conflict_tie_or_drop_policy_rejects_the_whole_cluster():
    k = [1, 1, 1, 1]
    tie, _ = resolve(k, k, [0, 2, 0, 2], [True] * 4)
    assert codes(tie) == ["duplicate_label_conflict"] * 4
    dropped, _ = resolve(k, k, [2, 2, 2, 0], [True] * 4, policy="drop")
    assert codes(dropped) == ["duplicate_label_conflict"] * 4


def test_unlabeled_duplicates_never_conflict_and_inactive_rows_are_ignored():
    k = [3, 3, 3]
    decision, _ = resolve(k, k, [-1, -1, -1], [False, True, True])
    assert codes(decision) == ["keep", "keep", "duplicate_exact"]  # row 0 was rejected earlier


def test_unknown_policy():
    with pytest.raises(ValueError, match="on_label_conflict"):
        resolve(np.zeros(1), np.zeros(1), [0], [True], policy="first")
