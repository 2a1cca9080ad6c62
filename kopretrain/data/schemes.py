"""Label schemes: how a raw row becomes ``negative`` / ``neutral`` / ``positive`` (or no label).

Three kinds, chosen by ``ingest.label_scheme``:

* ratings with thresholds -- ``rating <= negative_max`` is negative, ``rating >= positive_min``
  positive, anything between neutral. Presets: ``nsmc`` (1-10 stars: 1-4 / 5-8 / 9-10, the split
  the binary NSMC files were cut from, with 5-8 kept as neutral) and ``stars5`` (1-5 stars:
  1-2 / 3 / 4-5). ``thresholds`` takes all four numbers from the config.
* ``column`` -- an existing label column, mapped value by value (``{"0": "negative", "1": "positive"}``).
* ``none`` -- unlabeled text (pretraining corpora): label is null.

Every way a row can fail is a named reject reason, never a silent drop or a guessed label.
Standard library only (the ingest config validates presets in ``__post_init__``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

LABELS = ("negative", "neutral", "positive")  # same order as kopretrain.data.files.LABELS
UNLABELED = -1  # label code for "no label" in the small per-row arrays

# name -> (rating_min, rating_max, negative_max, positive_min)
PRESETS: dict[str, tuple[float, float, float, float]] = {
    "nsmc": (1, 10, 4, 9),
    "stars5": (1, 5, 2, 4),
}
SCHEMES = ("nsmc", "stars5", "thresholds", "column", "none")


class LabelError(ValueError):
    """A row whose rating/label cannot be turned into a label; ``reason`` is the reject reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def parse_rating(value: Any) -> float | None:
    """``"9"`` -> 9.0, ``" 4.5 "`` -> 4.5, ``""``/None -> None; raise LabelError when not a number.

    >>> parse_rating("10점")
    Traceback (most recent call last):
    ...
    kopretrain.data.schemes.LabelError: rating '10점' is not a number
    """
    if value is None:
        return None
    if isinstance(value, bool):  # JSON true/false is not a rating
        raise LabelError("rating_invalid", f"rating {value!r} is not a number")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            if "_" in text:  # float() reads "1_0" as 10 (Python's digit grouping): not a rating anyone wrote
                raise ValueError(text)
            number = float(text)
        except ValueError:
            raise LabelError("rating_invalid", f"rating {_short(text)!r} is not a number") from None
    if not math.isfinite(number):
        raise LabelError("rating_invalid", f"rating {value!r} is not a finite number")
    return number


def value_key(value: Any) -> str | None:
    """The string an id/group/label value stands for: ``1`` / ``1.0`` -> ``"1"``, ``" a "`` -> ``"a"``;
    None, empty and NaN -> None (a float column's missing value is NaN in Parquet written by pandas,
    and JSON's ``NaN``: "nan" as a value would make one group, or one id, of every missing row)."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    text = str(value).strip()
    return text or None


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def label_key(value: Any) -> str | None:
    """The string a label value is looked up by: ``1`` / ``1.0`` / ``" 1 "`` / ``"1.0"`` -> ``"1"``;
    empty or NaN -> None. Numeric strings are read as numbers so that a CSV's ``1.0`` maps like a
    JSON/Parquet ``1.0`` (or ``1``): the same label whatever the input format."""
    key = value_key(value)
    if key is None or not isinstance(value, str) or not _NUMBER.fullmatch(key):
        return key
    if "." not in key and "e" not in key.lower():
        return str(int(key))  # exact for any length ("01" -> "1"); float() would round big ones
    number = float(key)
    return value_key(number) if math.isfinite(number) else key


@dataclass
class LabelScheme:
    """Turns ``(rating, label_value)`` into a label code (0/1/2 or UNLABELED)."""

    kind: str  # "ratings" | "column" | "none"
    rating_min: float | None = None
    rating_max: float | None = None
    negative_max: float | None = None
    positive_min: float | None = None
    label_map: dict[str, str] = field(default_factory=dict)

    @property
    def needs_rating(self) -> bool:
        return self.kind == "ratings"

    @property
    def needs_label(self) -> bool:
        return self.kind == "column"

    def check_rating(self, rating: float | None) -> None:
        """Raise LabelError when a parsed rating lies outside ``[rating_min, rating_max]``."""
        if rating is None:
            return
        lo, hi = self.rating_min, self.rating_max
        if (lo is not None and rating < lo) or (hi is not None and rating > hi):
            raise LabelError("rating_out_of_range", f"rating {rating:g} is outside {lo:g}-{hi:g}")

    def code(self, rating: float | None, label_value: Any = None) -> int:
        """Label code for one row; raise LabelError with the reject reason when there is none."""
        if self.kind == "none":
            return UNLABELED
        if self.kind == "column":
            key = label_key(label_value)
            if key is None:
                raise LabelError("label_missing", "label is empty")
            name = self.label_map.get(key)
            if name is None:
                raise LabelError(
                    "label_unmapped", f"label {_short(key)!r} is not in the label map ({', '.join(self.label_map)})"
                )
            return LABELS.index(name)
        if rating is None:
            raise LabelError("rating_missing", "rating is empty")
        self.check_rating(rating)
        if rating <= self.negative_max:  # type: ignore[operator]
            return 0
        if rating >= self.positive_min:  # type: ignore[operator]
            return 2
        return 1

    def rating_bands(self, whole: bool = True) -> dict[str, list[float]] | None:
        """The ratings each label covers as ``[first, last]``, for reports that explain errors by rating.

        >>> build_scheme("nsmc").rating_bands()
        {'negative': [1, 4], 'neutral': [5, 8], 'positive': [9, 10]}

        ``whole``: the ratings are whole numbers (a star scale), so each band is named by the first
        and last rating in it. Otherwise the bands are the thresholds themselves and neutral lies
        strictly between its two ends. ``neutral`` is absent when no whole rating falls between the
        thresholds. None for schemes whose labels do not come from ratings.
        """
        if self.kind != "ratings":
            return None
        lo, hi, neg, pos = self.rating_min, self.rating_max, self.negative_max, self.positive_min
        if not whole:
            return {"negative": [lo, neg], "neutral": [neg, pos], "positive": [pos, hi]}  # type: ignore[list-item]
        below, above = math.floor(neg), math.ceil(pos)  # type: ignore[arg-type]
        bands = {"negative": [math.ceil(lo), below], "positive": [above, math.floor(hi)]}  # type: ignore[arg-type]
        if below + 1 <= above - 1:
            bands["neutral"] = [below + 1, above - 1]
        return {name: bands[name] for name in LABELS if name in bands}

    def describe(self) -> str:
        """One line for logs and the dataset card, e.g. ``ratings 1-10: negative <= 4, ...``."""
        if self.kind == "none":
            return "unlabeled (label is null)"
        if self.kind == "column":
            return "label column mapped " + ", ".join(f"{k!r} -> {v}" for k, v in self.label_map.items())
        return (
            f"ratings {self.rating_min:g}-{self.rating_max:g}: negative <= {self.negative_max:g}, "
            f"neutral between, positive >= {self.positive_min:g}"
        )


def build_scheme(name: str, *, rating_min: float | None = None, rating_max: float | None = None,
                 negative_max: float | None = None, positive_min: float | None = None,
                 label_map: dict[str, str] | None = None, flag: str = "--label-scheme") -> LabelScheme:
    """Resolve a scheme name plus optional overrides; raise ValueError naming the flag to fix.

    Explicit thresholds override a preset (``nsmc`` with ``positive_min=8`` moves 8 to positive).
    """
    if name not in SCHEMES:
        raise ValueError(f"{flag}: {name!r} is not one of {', '.join(SCHEMES)}")
    if label_map and name != "column":  # it did nothing: the ratings (or nothing) gave the labels
        raise ValueError(f"--label-map maps a label column's values: it needs --label-scheme column, not {name}")
    bounds = [f for f, v in (("--rating-min", rating_min), ("--rating-max", rating_max),
                             ("--negative-max", negative_max), ("--positive-min", positive_min)) if v is not None]
    if bounds and name in ("none", "column"):
        raise ValueError(f"{', '.join(bounds)}: rating thresholds, unused with --label-scheme {name} "
                         "(no rating gives the labels)")
    if name == "none":
        return LabelScheme("none")
    if name == "column":
        mapping = dict(label_map) if label_map else {lab: lab for lab in LABELS}
        bad = {k: v for k, v in mapping.items() if v not in LABELS}
        if bad:
            raise ValueError(f"--label-map: values must be {', '.join(LABELS)}; got {bad}")
        # keys read like the values they are looked up with ("1.0" and 1 both mean "1")
        keyed: dict[str, str] = {}
        for k, v in mapping.items():
            key = label_key(str(k)) or ""
            if keyed.get(key, v) != v:  # "0": negative and "0.0": positive: the last one won silently
                raise ValueError(f"--label-map: {k!r} -> {v} contradicts an earlier key for the same value "
                                 f"{key!r} -> {keyed[key]}")
            keyed[key] = v
        return LabelScheme("column", label_map=keyed)
    base = PRESETS.get(name, (None, None, None, None))
    given = (rating_min, rating_max, negative_max, positive_min)
    lo, hi, neg, pos = (g if g is not None else b for g, b in zip(given, base))
    names = ("--rating-min", "--rating-max", "--negative-max", "--positive-min")
    missing = [n for n, v in zip(names, (lo, hi, neg, pos)) if v is None]
    if missing:
        raise ValueError(f"{flag} thresholds: set {', '.join(missing)}")
    if not lo <= neg < pos <= hi:
        raise ValueError(
            f"{flag} {name}: need rating_min <= negative_max < positive_min <= rating_max, "
            f"got {lo:g} <= {neg:g} < {pos:g} <= {hi:g}"
        )
    return LabelScheme("ratings", float(lo), float(hi), float(neg), float(pos))


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def scale_warnings(scheme: LabelScheme, splits: dict[str, dict], rejected: dict[str, int], rows_in: int) -> list[str]:
    """A rating scheme that does not fit the file's scale: ``nsmc`` (1-10) on 1-5 stars made every
    5-star review neutral and no review positive; ``stars5`` on 1-10 rejected half the rows. Both
    ran to the end without a word."""
    if scheme.kind != "ratings":
        return []
    from kopretrain.data.files import LABELS

    counts = {c: sum((s.get("labels") or {}).get(c, 0) for s in splits.values()) for c in LABELS}
    out = []
    bands = scheme.rating_bands() or {}  # a scheme without a neutral band (negative <= 3, positive >= 4) means it
    empty = [c for c in LABELS if counts[c] == 0 and c in bands]
    if sum(counts.values()) >= 100 and empty:  # in a handful of rows a class may just be absent
        out.append(f"no review became {' or '.join(empty)} under {scheme.describe()}: are the ratings on this "
                   "scale? (1-5 stars read with a 1-10 scheme give no positives)")
    bad = rejected.get("rating_out_of_range", 0)
    if bad and bad >= 0.1 * rows_in:
        out.append(f"{bad:,} of {rows_in:,} ratings are outside {scheme.rating_min:g}-{scheme.rating_max:g} "
                   "(rejected as rating_out_of_range): the file's scale may differ from --label-scheme; "
                   "see rejected.jsonl")
    return out
