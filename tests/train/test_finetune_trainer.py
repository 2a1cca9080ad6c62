"""The fine-tuning Trainer pieces: the epoch-seeded length-grouped order that makes resumes exact."""

from __future__ import annotations


def test_length_grouped_order_depends_on_seed_and_epoch_only():
    """A resumed run restores the global RNG from its checkpoint: the batch order must not read it."""
    import torch

    from kopretrain.train.finetune_trainer import EpochSeeded

    sampler = EpochSeeded([5, 9, 3, 7, 2, 8, 4, 6] * 20, batch_size=4, seed=42)
    torch.manual_seed(0)
    first = list(sampler)
    torch.manual_seed(1)
    assert list(sampler) == first and sorted(first) == list(range(160))
    sampler.set_epoch(1)
    assert list(sampler) != first
