"""Exact and near-duplicate detection over small per-row keys (64-bit hashes, not texts).

Keys (computed while streaming, so only 8 bytes per row stay in memory):

* exact: NFC + whitespace collapsed + stripped. ``"재밌어요  진짜"`` == ``"재밌어요 진짜"``.
* near: NFKC, lowercased, every non-word character (spaces, punctuation, emoji) dropped, and runs
  of a repeated non-digit character collapsed to one. ``"재밌어요ㅋㅋㅋ!!"``, ``"재밌어요 ㅋㅋ"`` and
  ``"재밌어욬ㅋ"`` -> ``"재밌어요ㅋ"`` / ``"재밌어욬ㅋ"`` (the typo stays). Digits are not collapsed, so
  ``"100점"`` and ``"10점"`` stay apart. A text with no word characters (``"^^;"``) falls back to its
  exact key rather than colliding with every other emoticon-only text.

This is two regex passes and a hash per row: cheap enough for millions of reviews, and it catches
the copy-paste-with-more-ㅋ duplicates that dominate review sites. MinHash would also catch
reworded near-copies, but on 35-character reviews it mostly merges different short opinions.

Collisions: 64-bit blake2b keys collide with probability ~n^2/2^65 (~1e-8 for a million rows).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Sequence

_NON_WORD = re.compile(r"[\W_]+")
_REPEAT = re.compile(r"(\D)\1+")

KEEP = 0  # decision code for a kept row; other codes index into REASONS
REASONS = ("", "duplicate_id", "duplicate_exact", "duplicate_near", "duplicate_label_conflict")
POLICIES = ("majority", "drop")


def exact_text(text: str) -> str:
    """``"  좋아요\\n 최고 "`` -> ``"좋아요 최고"``."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def near_text(exact: str) -> str:
    """``"재밌어요 ㅋㅋㅋ!!"`` -> ``"재밌어요ㅋ"`` (see module docstring); ``""`` when nothing is left."""
    return _REPEAT.sub(r"\1", _NON_WORD.sub("", unicodedata.normalize("NFKC", exact).lower()))


def hash64(text: str) -> int:
    """Stable signed 64-bit hash (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                          "little", signed=True)


def keys(text: str) -> tuple[int, int]:
    """``(exact_hash, near_hash)`` of a raw text."""
    exact = exact_text(text)
    near = near_text(exact)
    return hash64(exact), hash64("\x00near:" + near) if near else hash64(exact)


def duplicate_ids(id_hashes, has_id):
    """``(dup, first)``: ``dup`` marks rows whose id an earlier row already used (rows without an
    id are never duplicates); ``first`` is the index of that earlier row (-1 elsewhere)."""
    import numpy as np

    id_hashes = np.asarray(id_hashes, dtype=np.int64)
    has_id = np.asarray(has_id, dtype=bool)
    dup = np.zeros(len(id_hashes), dtype=bool)
    first = np.full(len(id_hashes), -1, dtype=np.int64)
    rows = np.flatnonzero(has_id)
    if len(rows):
        _, first_pos, inverse = np.unique(id_hashes[rows], return_index=True, return_inverse=True)
        first_row = rows[first_pos][inverse]  # np.unique's return_index is the first occurrence
        later = first_row != rows
        dup[rows[later]] = True
        first[rows[later]] = first_row[later]
    return dup, first


def resolve(cluster_keys, exact_keys, labels: Sequence[int], active, policy: str = "majority"):
    """Decide which rows of each duplicate cluster survive.

    ``cluster_keys`` is the near key (or the exact key when near dedup is off); ``active`` marks
    rows still in play (not rejected earlier). Per cluster, the kept row is the first row carrying
    the majority label. Others are rejected as ``duplicate_label_conflict`` when their label
    differs from the kept one, else ``duplicate_exact`` (same exact key) or ``duplicate_near``.
    With ``policy="drop"``, or when the top labels tie, a cluster whose labels disagree is
    rejected whole as ``duplicate_label_conflict``: a text that readers rated both ways is not
    evidence for either label. Unlabeled rows (code -1) never conflict.

    Returns ``(decision, keeper)``: int8 decision codes (``KEEP`` or an index into ``REASONS``)
    and, for rejected duplicates, the index of the row that was kept instead (-1 when none was).
    """
    import numpy as np

    if policy not in POLICIES:
        raise ValueError(f"on_label_conflict: {policy!r} is not one of {', '.join(POLICIES)}")
    ck = np.asarray(cluster_keys, dtype=np.int64)
    ek = np.asarray(exact_keys, dtype=np.int64)
    lab = np.asarray(labels, dtype=np.int8)
    active = np.asarray(active, dtype=bool)
    decision = np.zeros(len(ck), dtype=np.int8)
    keeper = np.full(len(ck), -1, dtype=np.int64)
    rows = np.flatnonzero(active)
    if not len(rows):
        return decision, keeper
    order = rows[np.argsort(ck[rows], kind="stable")]  # stable: input order inside each cluster
    sorted_keys = ck[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    conflict, exact, near = REASONS.index("duplicate_label_conflict"), REASONS.index("duplicate_exact"), \
        REASONS.index("duplicate_near")
    for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
        members = order[start:start + size]
        mlab = lab[members]
        counts = np.bincount(mlab[mlab >= 0], minlength=3)
        top = int(counts.argmax())
        labelled_kinds = int((counts > 0).sum())
        if labelled_kinds > 1 and (policy == "drop" or (counts == counts[top]).sum() > 1):
            decision[members] = conflict
            continue
        keep = members[np.flatnonzero(mlab == top)[0]] if labelled_kinds else members[0]
        for row in members.tolist():
            if row == keep:
                continue
            keeper[row] = keep
            if labelled_kinds > 1 and lab[row] != lab[keep]:
                decision[row] = conflict
            else:
                decision[row] = exact if ek[row] == ek[keep] else near
    return decision, keeper


def id_warnings(decision, keeper, exact) -> list[str]:
    """A warning when many rows dropped as ``duplicate_id`` carry another text than the row that kept
    the id: the ids are likely per file (1..N in each shop export), not per review."""
    import numpy as np

    dup = np.flatnonzero(np.asarray(decision) == REASONS.index("duplicate_id"))
    if not len(dup):
        return []
    exact = np.asarray(exact, dtype=np.int64)
    other = int((exact[dup] != exact[np.asarray(keeper)[dup]]).sum())
    if other * 2 < len(dup) or other < 20:  # a review re-posted edited keeps its id: not a pattern
        return []
    return [f"{other:,} of {len(dup):,} rows rejected as duplicate_id have another text than the row that kept "
            "the id: are ids numbered per file? --id-column none keys rows by file and line instead"]
