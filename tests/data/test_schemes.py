import math

import pytest

from kopretrain.data.schemes import LABELS, UNLABELED, LabelError, build_scheme, label_key, parse_rating


def name(scheme, rating=None, value=None):
    code = scheme.code(rating, value)
    return None if code == UNLABELED else LABELS[code]


def reason(scheme, rating=None, value=None):
    with pytest.raises(LabelError) as info:
        scheme.code(rating, value)
    return info.value.reason


def test_nsmc_preset_boundaries():
    s = build_scheme("nsmc")
    assert [name(s, r) for r in (1, 4, 5, 8, 9, 10)] == [
        "negative", "negative", "neutral", "neutral", "positive", "positive"]
    assert reason(s, 0) == "rating_out_of_range"
    assert reason(s, 11) == "rating_out_of_range"
    assert reason(s, None) == "rating_missing"


def test_stars5_preset_boundaries_and_half_stars():
    s = build_scheme("stars5")
    assert [name(s, r) for r in (1, 2, 3, 4, 5)] == ["negative", "negative", "neutral", "positive", "positive"]
    assert name(s, 2.5) == "neutral" and name(s, 4.5) == "positive"
    assert reason(s, 6) == "rating_out_of_range"


def test_thresholds_override_a_preset_and_custom_thresholds():
    assert name(build_scheme("nsmc", positive_min=8), 8) == "positive"
    custom = build_scheme("thresholds", rating_min=0, rating_max=100, negative_max=40, positive_min=70)
    assert [name(custom, r) for r in (0, 40, 41, 69, 70, 100)] == [
        "negative", "negative", "neutral", "neutral", "positive", "positive"]


@pytest.mark.parametrize("kwargs, flag", [
    ({"rating_min": 1, "rating_max": 10, "negative_max": 4}, "--positive-min"),
    ({"rating_min": 1, "rating_max": 10, "negative_max": 9, "positive_min": 5}, "negative_max < positive_min"),
])
def test_bad_thresholds_name_what_to_fix(kwargs, flag):
    with pytest.raises(ValueError, match=flag):
        build_scheme("thresholds", **kwargs)


def test_parse_rating_numbers_blanks_and_garbage():
    assert parse_rating(" 9 ") == 9.0 and parse_rating(4.5) == 4.5 and parse_rating(7) == 7.0
    assert parse_rating("") is None and parse_rating(None) is None
    for bad in ("10점", "abc", True, float("nan"), "inf"):
        with pytest.raises(LabelError) as info:
            parse_rating(bad)
        assert info.value.reason == "rating_invalid"
    assert math.isclose(parse_rating("1e1"), 10.0)


def test_label_column_mapping_accepts_ints_floats_and_padded_strings():
    s = build_scheme("column", label_map={"0": "negative", "1": "positive"})
    assert name(s, value=0) == "negative"
    assert name(s, value=1.0) == "positive"
    assert name(s, value=" 1 ") == "positive"
    assert reason(s, value="2") == "label_unmapped"
    assert reason(s, value="") == "label_missing"
    assert reason(s, value=None) == "label_missing"


def test_label_column_default_map_is_the_label_names():
    s = build_scheme("column")
    assert name(s, value="neutral") == "neutral"
    assert reason(s, value="Neutral") == "label_unmapped"


def test_label_map_values_must_be_labels():
    with pytest.raises(ValueError, match="--label-map"):
        build_scheme("column", label_map={"1": "good"})


def test_unlabeled_scheme_and_unknown_scheme():
    assert build_scheme("none").code(None, None) == UNLABELED
    assert build_scheme("none").code(3.0) == UNLABELED
    with pytest.raises(ValueError, match="--label-scheme"):
        build_scheme("stars10")


def test_label_key():
    assert label_key(1.0) == "1" and label_key(" pos ") == "pos" and label_key("  ") is None and label_key(None) is None


def test_describe_mentions_thresholds():
    assert "negative <= 4" in build_scheme("nsmc").describe()
    assert "'0' -> negative" in build_scheme("column", label_map={"0": "negative"}).describe()


def test_rating_bands_agree_with_the_labels_each_rating_gets():
    """Reports word their rating sentences from these bands (NSMC neutral 5-8, stars5 neutral 3)."""
    for scheme_name, top in (("nsmc", 10), ("stars5", 5)):
        s = build_scheme(scheme_name)
        bands = s.rating_bands()
        for label, (first, last) in bands.items():
            assert {name(s, float(r)) for r in range(first, last + 1)} == {label}
        assert sum(last - first + 1 for first, last in bands.values()) == top  # every rating in one band
    assert build_scheme("nsmc").rating_bands() == {"negative": [1, 4], "neutral": [5, 8], "positive": [9, 10]}
    no_neutral = build_scheme("thresholds", rating_min=1, rating_max=5, negative_max=2, positive_min=3)
    assert no_neutral.rating_bands() == {"negative": [1, 2], "positive": [3, 5]}
    halves = build_scheme("thresholds", rating_min=0, rating_max=5, negative_max=2, positive_min=3.5)
    assert halves.rating_bands(whole=False) == {"negative": [0, 2], "neutral": [2, 3.5], "positive": [3.5, 5]}
    assert halves.rating_bands() == {"negative": [0, 2], "neutral": [3, 3], "positive": [4, 5]}
    assert build_scheme("column").rating_bands() is None and build_scheme("none").rating_bands() is None


def test_label_key_reads_numeric_strings_as_numbers_and_nan_as_missing():
    # A CSV's "1.0" must map like JSON/Parquet 1.0 and 1; NaN (pandas' missing value) is no label.
    assert label_key("1.0") == label_key(1.0) == label_key(1) == label_key(" 1 ") == "1"
    assert label_key("0.50") == label_key(0.5) == "0.5" and label_key("-0") == "0"
    assert label_key(float("nan")) is None and label_key("pos") == "pos"
    s = build_scheme("column", label_map={"0": "negative", "1.0": "positive"})
    assert name(s, value="1") == name(s, value="1.0") == name(s, value=1) == "positive"
    assert name(s, value="0.0") == "negative"
    assert reason(s, value=float("nan")) == "label_missing"


def test_value_key_keeps_id_strings_as_written():
    from kopretrain.data.schemes import value_key

    assert value_key("007") == "007" and value_key(7.0) == "7" and value_key(float("nan")) is None


def test_a_scheme_that_does_not_fit_the_files_scale_is_warned_about():
    from kopretrain.data.schemes import scale_warnings

    nsmc, stars5 = build_scheme("nsmc"), build_scheme("stars5")
    five_star = {"train": {"labels": {"negative": 30, "neutral": 70, "positive": 0}},
                 "test": {"labels": {"negative": 3, "neutral": 7, "positive": 0}}}
    assert "no review became positive" in " ".join(scale_warnings(nsmc, five_star, {}, 110))
    fine = {"train": {"labels": {"negative": 30, "neutral": 20, "positive": 50}}}
    assert scale_warnings(stars5, fine, {"rating_out_of_range": 5}, 105) == []  # a few typos: no warning
    assert "50 of 150 ratings are outside 1-5" in " ".join(scale_warnings(stars5, fine, {"rating_out_of_range": 50}, 150))
    assert scale_warnings(build_scheme("none"), {"train": {"labels": {}}}, {}, 10) == []


@pytest.mark.parametrize("name, options, message", [
    ("stars5", {"label_map": {"1": "positive"}}, "--label-map maps a label column's values"),
    ("none", {"label_map": {"1": "positive"}}, "needs --label-scheme column, not none"),
    ("column", {"positive_min": 4}, "--positive-min: rating thresholds, unused"),
    ("none", {"rating_min": 1, "rating_max": 5}, "--rating-min, --rating-max: rating thresholds"),
])
def test_options_the_scheme_would_ignore_are_refused(name, options, message):
    with pytest.raises(ValueError, match=message):
        build_scheme(name, **options)


def test_a_scheme_without_a_neutral_band_is_not_warned_about_its_absence():
    from kopretrain.data.schemes import scale_warnings

    binary = build_scheme("thresholds", rating_min=1, rating_max=5, negative_max=3, positive_min=4)
    splits = {"train": {"labels": {"negative": 60, "neutral": 0, "positive": 60}}}
    assert scale_warnings(binary, splits, {}, 120) == []
