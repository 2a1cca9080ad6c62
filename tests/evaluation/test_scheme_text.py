"""The report's scheme-dependent sentences: NSMC is named only for NSMC's rating mapping, other
schemes get their own bands, and an unknown scheme gets nothing scheme-specific."""

from __future__ import annotations

from kopretrain.evaluation.scheme_text import binary_scope, labels_source, rating_errors, summarize


def test_nsmc_mapping_keeps_the_published_comparison_and_its_bands():
    nsmc = summarize({"label_scheme": "nsmc"}, ["1", "5", "10"])
    assert nsmc["nsmc"] and "published binary NSMC accuracies" in binary_scope(nsmc)
    assert "band of ratings 5-8 between negative (1-4) and positive (9-10)" in rating_errors(nsmc)
    assert "its edges (5 and 8)" in rating_errors(nsmc)
    # The same 1-10 scale with another cut is not NSMC's mapping: no comparison with NSMC numbers.
    moved = summarize({"label_scheme": "nsmc", "positive_min": 8}, ["1"])
    assert not moved["nsmc"] and "NSMC" not in binary_scope(moved) + rating_errors(moved)
    assert "ratings 1-4 against 8-10" in binary_scope(moved) and "(5 and 7)" in rating_errors(moved)


def test_other_schemes_use_their_own_ranges():
    stars = summarize({"label_scheme": "stars5"}, ["1", "3", "5"])
    texts = labels_source(stars) + binary_scope(stars) + rating_errors(stars)
    assert "NSMC" not in texts and "5-8" not in texts and "9-10" not in texts
    assert "ratings 1-2 against 4-5" in texts and "neutral is the one rating 3" in texts
    halves = summarize({"label_scheme": "thresholds", "rating_min": 0, "rating_max": 5, "negative_max": 2,
                        "positive_min": 3.5}, ["0.5", "4.5"])
    assert not halves["whole_ratings"]
    assert "ratings up to 2 against ratings from 3.5" in binary_scope(halves)
    assert "strictly between 2 and 3.5" in rating_errors(halves)
    cut = summarize({"label_scheme": "thresholds", "rating_min": 1, "rating_max": 5, "negative_max": 2,
                     "positive_min": 3}, ["1"])
    assert "no neutral ratings (negative 1-2, positive 3-5)" in rating_errors(cut)
    column = summarize({"label_scheme": "column", "label_map": {"0": "negative", "1": "positive"}})
    assert "label column" in binary_scope(column) and "band" not in rating_errors(column)


def test_unknown_scheme_says_nothing_scheme_specific():
    for unknown in (None, summarize({}), summarize({"label_scheme": "stars7"})):
        assert unknown is None
        assert labels_source(unknown) == "" and binary_scope(unknown) == "."
        assert "band" not in rating_errors(unknown) and "NSMC" not in rating_errors(unknown)
