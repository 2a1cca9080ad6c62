"""Group-aware, stratified train/dev/test assignment with arbitrary fractions.

No group (movie, product, app) lands in two splits, so a model cannot score well on the test
split by recognising a movie it saw in training. Within that constraint each split gets close to
its fraction of every class.

Why not ``sklearn.model_selection.StratifiedGroupKFold``: it makes k equal folds, so 0.8/0.1/0.1
means 10 folds merged, and 0.85/0.075/0.075 would need 40; it has no notion of rows without a
group, and it offers no target per split. The greedy below is the same idea (largest groups
first, each to the split where it best reduces the class-count error) with explicit targets.

Rows without a group are assigned one by one: per class, shuffled and dealt out to whatever each
split still needs after the groups were placed, so they fill the gaps the groups left. The counts
are rounded jointly over the classes (largest remainder over all loose rows, seeded tie-breaks),
so a small dev or test split gets its share instead of every class rounding the same way.
"""

from __future__ import annotations

from typing import Sequence

from kopretrain.runs.records import StageError

N_CLASSES = 4  # negative, neutral, positive, unlabeled (label code -1 is stored in column 3)


def _class_index(labels):
    import numpy as np

    lab = np.asarray(labels, dtype=np.int64)
    return np.where(lab < 0, N_CLASSES - 1, lab)


def assign(groups: Sequence[int], labels: Sequence[int], fractions: Sequence[float], seed: int):
    """Split index (0..len(fractions)-1) for every row.

    ``groups``: int group id per row, ``-1`` for rows without a group. ``labels``: label code per
    row (0/1/2, ``-1`` unlabeled). ``fractions``: target share of each split (sums to 1).
    Deterministic for a seed; another seed changes the order groups are placed in and how
    ungrouped rows are dealt.
    """
    import numpy as np

    groups = np.asarray(groups, dtype=np.int64)
    cls = _class_index(labels)
    frac = np.asarray(fractions, dtype=np.float64)
    if len(frac) == 0 or np.any(frac < 0) or abs(frac.sum() - 1) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {list(fractions)}")
    rng = np.random.default_rng(seed)
    out = np.full(len(groups), -1, dtype=np.int8)
    totals = np.bincount(cls, minlength=N_CLASSES).astype(np.float64)
    target = frac[:, None] * totals[None, :]  # [split, class]
    current = np.zeros_like(target)

    grouped = groups >= 0
    if grouped.any():
        # A group of one row is placed like an ungrouped row (same constraint, vectorised below).
        _, inv_all, size_all = np.unique(groups[grouped], return_inverse=True, return_counts=True)
        grouped[np.flatnonzero(grouped)[size_all[inv_all] == 1]] = False
    if grouped.any():
        uniq, inverse = np.unique(groups[grouped], return_inverse=True)
        counts = np.zeros((len(uniq), N_CLASSES))
        np.add.at(counts, (inverse, cls[grouped]), 1)
        sizes = counts.sum(axis=1)
        group_split = np.empty(len(uniq), dtype=np.int8)
        tgt = np.where(target > 0, target, np.inf)  # a split/class with no target never attracts rows
        open_split = frac > 0
        # Largest groups first (the hard ones to place); a seeded shuffle orders equal sizes.
        order = np.lexsort((rng.permutation(len(uniq)), -sizes))
        for g in order.tolist():
            c = counts[g]
            # Change of sum((cur - tgt)^2 / tgt) when c joins each split. The error is relative to
            # each split's target, so the splits fill in step and every split gets its share of
            # each group size. (Absolute error filled train with all big groups before dev/test got
            # any: NSMC dev/test then held 22 reviews per movie against 67 in train.)
            delta = ((2 * c * (current - target) + c * c) / tgt).sum(axis=1)
            s = int(np.where(open_split, delta, np.inf).argmin())
            group_split[g] = s
            current[s] += c
        out[grouped] = group_split[inverse]

    _deal_loose(out, np.flatnonzero(~grouped), cls, np.maximum(target - current, 0), frac, rng)
    return out


def _deal_loose(out, loose, cls, need, frac, rng) -> None:
    """Assign the ``loose`` rows (no group) in ``out``: per class, shuffled and dealt out to what
    each split still ``need`` s (``[split, class]``), the counts rounded jointly by :func:`_quota`."""
    import numpy as np

    dealt = []  # (class, its loose rows shuffled)
    for k in range(N_CLASSES):
        rows = loose[cls[loose] == k]
        if len(rows):
            dealt.append((k, rows[rng.permutation(len(rows))]))
    if not dealt:
        return
    quota = _quota(need[:, [k for k, _ in dealt]], np.array([len(rows) for _, rows in dealt]), frac, rng)
    for j, (_, rows) in enumerate(dealt):
        out[rows] = np.repeat(np.arange(len(frac), dtype=np.int8), quota[:, j])


def _largest_remainder(exact, total: int, tiebreak):
    """Integers summing to ``total``, each the floor or ceiling of ``exact`` (which sums to ``total``):
    the largest fractional parts round up; equal ones (to 1e-9) in the order of ``tiebreak``."""
    import numpy as np

    exact = np.asarray(exact, dtype=np.float64)
    quota = np.floor(exact + 1e-9).astype(np.int64)
    rest = int(total - quota.sum())
    if rest > 0:
        order = np.lexsort((tiebreak, -np.round(exact - quota, 9)))
        quota[order[:rest]] += 1
    return quota


def _quota(need, n, frac, rng):
    """Deal ``n[j]`` rows of class ``j`` to the splits in proportion to ``need[:, j]`` (by ``frac``
    if a class needs nothing): ``[split, class]`` counts.

    Rounded jointly, not class by class: each split's total is the largest-remainder rounding of
    its exact share of all rows, then each class's remainder rows go to the cells with the largest
    fractional parts among the splits still short. Per-class rounding with ties to the first split
    gave 15 rows of 3 classes at 0.8/0.1/0.1 a dev split of 3 and a test split of 0 whatever the
    seed. Ties are broken by ``rng``, so no split is favoured.
    """
    import numpy as np

    need = np.asarray(need, dtype=np.float64)
    share = np.where(need.sum(axis=0) > 0, need, np.asarray(frac, dtype=np.float64)[:, None])
    exact = share / share.sum(axis=0) * np.asarray(n)  # [split, class]
    totals = _largest_remainder(exact.sum(axis=1), int(np.sum(n)), rng.permutation(len(exact)))
    quota = np.floor(exact + 1e-9).astype(np.int64)
    short_class = np.asarray(n) - quota.sum(axis=0)
    short_split = totals - quota.sum(axis=1)
    frac_part = np.round(exact - quota, 9).ravel()
    for cell in np.lexsort((rng.permutation(frac_part.size), -frac_part)):
        s, j = divmod(int(cell), exact.shape[1])
        if frac_part[cell] > 0 and short_split[s] > 0 and short_class[j] > 0:
            quota[s, j] += 1
            short_split[s] -= 1
            short_class[j] -= 1
    for j in np.flatnonzero(short_class):  # rare leftovers: to the splits still short, in order
        while short_class[j] > 0:
            s = int(np.flatnonzero(short_split > 0)[0])
            quota[s, j] += 1
            short_split[s] -= 1
            short_class[j] -= 1
    return quota


def stratified_sample(labels, n: int, seed: int, what: str = "--label-budget"):
    """Row indices of an exactly-``n`` sample with the label proportions of ``labels`` (sorted)."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    if n == 0 or n >= len(labels):
        return idx
    try:
        picked, _ = train_test_split(idx, train_size=n, stratify=np.asarray(labels), random_state=seed)
    except ValueError as exc:  # e.g. a class with a single row, or n smaller than the class count
        raise StageError(f"{what} {n}: cannot draw a stratified sample ({exc})") from None
    return np.sort(picked)


def empty_split_warnings(splits: dict[str, dict], fractions: dict[str, float]) -> list[str]:
    """A split asked for (fraction > 0) that came out empty: too few rows or groups for it, and
    finetune/evaluate would then fail or select on nothing, so say so now."""
    return [f"the {name} split is empty although --{name}-fraction is {fraction}: too few rows or groups "
            f"({sum(s['rows'] for s in splits.values())} rows); lower the fraction or add data"
            for name, fraction in fractions.items() if fraction > 0 and splits.get(name, {}).get("rows", 0) == 0]
