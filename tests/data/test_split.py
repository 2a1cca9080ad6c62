import numpy as np
import pytest

from kopretrain.data.split import assign

FRACTIONS = (0.8, 0.1, 0.1)


def corpus(n_groups=300, seed=0):
    """Groups of very different sizes (like movies) with group-specific label mixes."""
    rng = np.random.default_rng(seed)
    sizes = rng.zipf(1.6, n_groups).clip(1, 200)
    groups = np.repeat(np.arange(n_groups), sizes)
    mix = rng.dirichlet([1, 1, 2], n_groups)
    labels = np.array([rng.choice(3, p=mix[g]) for g in groups])
    return groups, labels


def test_no_group_in_two_splits():
    groups, labels = corpus()
    out = assign(groups, labels, FRACTIONS, seed=1)
    for g in np.unique(groups):
        assert len(set(out[groups == g].tolist())) == 1


def test_split_sizes_and_class_proportions_are_close_to_targets():
    groups, labels = corpus(n_groups=600)
    out = assign(groups, labels, FRACTIONS, seed=1)
    n = len(groups)
    for s, frac in enumerate(FRACTIONS):
        assert abs((out == s).sum() / n - frac) < 0.01
        for k in range(3):
            share = (labels[out == s] == k).mean()
            assert abs(share - (labels == k).mean()) < 0.015, (s, k)


def test_deterministic_for_a_seed_and_different_for_another():
    groups, labels = corpus()
    a = assign(groups, labels, FRACTIONS, seed=7)
    assert np.array_equal(a, assign(groups, labels, FRACTIONS, seed=7))
    assert not np.array_equal(a, assign(groups, labels, FRACTIONS, seed=8))


def test_rows_without_group_fill_the_remaining_targets():
    rng = np.random.default_rng(3)
    labels = rng.choice(3, 1000, p=[0.2, 0.3, 0.5])
    groups = np.full(1000, -1)
    groups[:300] = np.repeat(np.arange(6), 50)  # a few big groups, the rest loose
    out = assign(groups, labels, FRACTIONS, seed=0)
    assert (out >= 0).all()
    counts = np.bincount(out, minlength=3)
    assert np.allclose(counts / 1000, FRACTIONS, atol=0.01)
    for k in range(3):  # loose rows are dealt per class, so each class follows the fractions
        assert np.allclose(np.bincount(out[labels == k], minlength=3) / (labels == k).sum(), FRACTIONS, atol=0.02)


def test_unlabeled_rows_are_split_by_size():
    out = assign(np.full(500, -1), np.full(500, -1), (0.6, 0.2, 0.2), seed=0)
    assert np.bincount(out).tolist() == [300, 100, 100]


def test_zero_fraction_split_stays_empty():
    groups, labels = corpus()
    out = assign(groups, labels, (0.9, 0.1, 0.0), seed=0)
    assert (out == 2).sum() == 0 and (out == 1).sum() > 0


def test_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        assign([0], [0], (0.5, 0.2, 0.2), seed=0)


def test_dev_and_test_get_groups_of_every_size_not_just_small_ones():
    # Minimising absolute (not per-split relative) error fills train with the big groups first.
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 60, 2000)
    groups = np.repeat(np.arange(2000), sizes)
    labels = rng.choice(3, len(groups), p=[0.2, 0.3, 0.5])
    out = assign(groups, labels, FRACTIONS, seed=2)
    per_group = [(out == s).sum() / len(np.unique(groups[out == s])) for s in range(3)]
    assert 0.85 < per_group[1] / per_group[0] < 1.15 and 0.85 < per_group[2] / per_group[0] < 1.15


@pytest.mark.parametrize("n, fractions", [(15, (0.8, 0.1, 0.1)), (30, (0.7, 0.15, 0.15))])
def test_small_splits_get_their_share_jointly_across_classes(n, fractions):
    # Rounding class by class with ties to dev gave 15 rows of 3 classes train 12 / dev 3 / test 0
    # for every seed, and 30 rows at 0.15/0.15 dev 6 / test 3.
    labels = np.repeat([0, 1, 2], n // 3)
    sizes = {tuple(np.bincount(assign(np.full(n, -1), labels, fractions, seed), minlength=3).tolist())
             for seed in range(12)}
    exact = [f * n for f in fractions]
    for size in sizes:
        assert sum(size) == n and all(abs(s - e) < 1 for s, e in zip(size, exact)), size
    assert {size[1] for size in sizes} == {int(exact[1]), int(exact[1]) + 1}  # the tie goes either way


def test_joint_rounding_keeps_every_class_in_proportion():
    labels = np.repeat([0, 1, 2, -1], [7, 11, 13, 5])
    for seed in range(10):
        out = assign(np.full(len(labels), -1), labels, FRACTIONS, seed)
        for k in (0, 1, 2, -1):
            got = np.bincount(out[labels == k], minlength=3)
            assert np.all(np.abs(got - np.array(FRACTIONS) * (labels == k).sum()) < 1 + 1e-9), (k, got)
