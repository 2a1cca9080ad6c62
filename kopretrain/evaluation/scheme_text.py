"""The report's sentences that depend on how the data was labelled.

evaluate records the ingest label scheme in ``metrics.json`` (``label_scheme``: see
:func:`kopretrain.evaluate.recorded_scheme`); these functions word the binary-accuracy and
per-rating explanations from it. NSMC is named only when the data used NSMC's rating mapping, and
when no scheme is known (data not made by ``kopretrain ingest``) they say nothing scheme-specific.
"""

from __future__ import annotations

from typing import Any

# Published binary NSMC test accuracies: comparable only when labels follow NSMC's 1-4 / 9-10 cut.
NSMC_BINARY = ("with NSMC's rating mapping (1-4 vs 9-10) it is comparable with published binary NSMC "
               "accuracies (e.g. KcELECTRA-base 91.97, KoBERT 89.59), though not on the same test reviews.")


def summarize(config: dict[str, Any], ratings_seen: Any = ()) -> dict[str, Any] | None:
    """What the report needs of an ingest label scheme, from the ingest ``config`` and the ratings
    it saw (its ``rating_histogram`` keys); None when the config names no scheme this version knows.

    >>> summarize({"label_scheme": "stars5"}, ["1", "3", "5"])["bands"]
    {'negative': [1, 2], 'neutral': [3, 3], 'positive': [4, 5]}
    """
    from kopretrain.data.schemes import build_scheme

    try:
        scheme = build_scheme(config["label_scheme"], rating_min=config.get("rating_min"),
                              rating_max=config.get("rating_max"), negative_max=config.get("negative_max"),
                              positive_min=config.get("positive_min"), label_map=config.get("label_map"))
    except (KeyError, TypeError, ValueError):  # no ingest upstream, or a record this version cannot read
        return None
    # Whole ratings (stars) name their bands by first and last rating (NSMC neutral: 5-8).
    whole = all(float(r).is_integer() for r in ratings_seen)
    return {"name": config["label_scheme"], "kind": scheme.kind, "description": scheme.describe(),
            "whole_ratings": whole, "bands": scheme.rating_bands(whole),
            "nsmc": scheme == build_scheme("nsmc")}  # NSMC's own mapping: published NSMC numbers compare


def _span(band: list[float]) -> str:
    first, last = band
    return f"{first:g}" if first == last else f"{first:g}-{last:g}"


def labels_source(scheme: dict[str, Any] | None) -> str:
    """`` (ratings 1-5: negative <= 2, ...)`` after the report's "Labels: ..." line, or nothing."""
    return f" ({scheme['description']})" if scheme else ""


def binary_scope(scheme: dict[str, Any] | None) -> str:
    """How the rows of the binary accuracy were labelled: the end of its explanation sentence."""
    if not scheme:
        return "."
    if scheme.get("nsmc"):
        return ": " + NSMC_BINARY
    bands = scheme.get("bands")
    if bands and scheme.get("whole_ratings", True):
        return (f": with this data's rating scheme ({scheme['name']}) that is ratings {_span(bands['negative'])} "
                f"against {_span(bands['positive'])}.")
    if bands:
        return (f": with this data's rating scheme ({scheme['name']}) that is ratings up to "
                f"{bands['negative'][1]:g} against ratings from {bands['positive'][0]:g}.")
    if scheme.get("kind") == "column":
        return f": here negative and positive come from the data's label column ({scheme['description']})."
    return "."


def rating_errors(scheme: dict[str, Any] | None) -> str:
    """Why errors cluster at some ratings, as the per-rating section's opening sentence."""
    tail = "the pred_* columns show where each rating's predictions go."
    bands = (scheme or {}).get("bands")
    if not bands:  # labels not cut from ratings, or unknown: nothing to say about bands
        return "Accuracy of the model on each original rating; " + tail
    neutral = bands.get("neutral")
    if neutral is None:
        return (f"This rating scheme has no neutral ratings (negative {_span(bands['negative'])}, positive "
                f"{_span(bands['positive'])}), so the ratings next to that cut are where a 3-class model is "
                "expected to err; " + tail)
    if not scheme.get("whole_ratings", True):
        return (f"Where the errors come from: neutral is the ratings strictly between {neutral[0]:g} and "
                f"{neutral[1]:g}, so ratings near those two thresholds are where a 3-class model is expected "
                "to err; " + tail)
    first, last = neutral
    band, edges = ((f"the band of ratings {first:g}-{last:g}", f"its edges ({first:g} and {last:g}) are")
                   if first != last else (f"the one rating {first:g}", "that rating is"))
    return (f"Where the errors come from: with this data's rating scheme ({scheme['name']}) neutral is {band} "
            f"between negative ({_span(bands['negative'])}) and positive ({_span(bands['positive'])}), so "
            f"{edges} where a 3-class model is expected to err; " + tail)
