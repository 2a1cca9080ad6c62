"""ELECTRA replaced-token detection: a small generator and a discriminator trained jointly.

transformers has ``ElectraForMaskedLM`` (generator) and ``ElectraForPreTraining`` (discriminator) but no
joint trainer (the PR adding one was closed unmerged), so the joint step lives here, following
google-research/electra ``run_pretraining.py``:

1. the generator predicts the masked tokens (MLM loss, vocabulary head on masked positions only);
2. a token is sampled at each masked position from ``softmax(logits / temperature)`` without
   gradient (the discriminator's loss must not flow into the generator through the sample);
3. a position is labelled *replaced* only if the sample differs from the original: when the
   generator guesses ``영화`` right at a masked ``영화``, the discriminator sees an original token;
4. loss = generator MLM + ``rtd_weight`` (λ = 50) · discriminator BCE over non-pad, non-special tokens.

Special tokens ([CLS], [SEP], <s>...) are left out of the discriminator loss, unlike the paper: they
are never masked, so their target is always "original" and the only thing the loss can teach is
to map them to a constant. On a pretrained checkpoint that is measurable damage: 240 steps of RTD
continuation on multilingual-e5-small-ko raised the cosine between [CLS] vectors of unrelated
reviews from 0.945 to 0.98, and a [CLS]-pooled fine-tune of it stayed at chance (BENCHMARKS.md).

Generator and discriminator share one embedding module (word, position, type embeddings and their
LayerNorm) as in the paper, so the generator's MLM gradients train the discriminator's embeddings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from kopretrain.train.objectives import IGNORE, TrainingModule, masked_logits, mlm_loss_terms

GENERATOR_DIR = "generator"


def _embedding_size(config) -> int:
    return getattr(config, "embedding_size", None) or config.hidden_size  # BERT-likes: no factorization


def tie_embeddings(generator: nn.Module, discriminator: nn.Module) -> None:
    """Make the generator use the discriminator's embedding module (same tensors, not copies).

    Works for any encoder family whose models keep their embeddings at ``<base_model>.embeddings``
    (ELECTRA, BERT, RoBERTa, XLM-R): an ELECTRA discriminator with an ELECTRA generator, or a BERT
    checkpoint as discriminator with a small BERT generator."""
    gen_cfg, disc_cfg = generator.config, discriminator.config
    if _embedding_size(gen_cfg) != _embedding_size(disc_cfg) or gen_cfg.vocab_size != disc_cfg.vocab_size:
        raise ValueError(
            f"generator embeddings {gen_cfg.vocab_size}x{_embedding_size(gen_cfg)} cannot be shared with the "
            f"discriminator's {disc_cfg.vocab_size}x{_embedding_size(disc_cfg)}"
        )
    shared = discriminator.base_model.embeddings
    generator.base_model.embeddings = shared
    # The generator's output layer is tied to its input embeddings: point it at the shared matrix.
    generator.get_output_embeddings().weight = shared.word_embeddings.weight


def sample_replacements(logits: torch.Tensor, temperature: float = 1.0,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of ``logits`` from ``softmax(logits / temperature)``; no gradient.

    Inverse-CDF sampling (one uniform per row, ``searchsorted`` in the cumulative probabilities)
    rather than ``torch.multinomial``, which draws an exponential variate per vocabulary entry:
    with ~600 masked positions x 16k entries that was 20% of a CPU training step.
    """
    with torch.no_grad():
        scaled = logits.detach().float()
        if temperature != 1.0:
            scaled = scaled / temperature
        cdf = F.softmax(scaled, dim=-1).cumsum_(-1)
        u = torch.rand((cdf.shape[0], 1), generator=generator, device=cdf.device) * cdf[:, -1:]
        return torch.searchsorted(cdf, u).squeeze(-1).clamp_(max=cdf.shape[-1] - 1)


def corrupt(input_ids: torch.Tensor, labels: torch.Tensor, sampled: torch.Tensor,
            attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Discriminator input and labels: masked positions get the samples; ``replaced = corrupted != original``.

    ``labels`` holds the original id at masked positions and -100 elsewhere (collator convention);
    ``sampled`` has one id per masked position in row-major order. Padding is never "replaced"."""
    masked = labels != IGNORE
    original = torch.where(masked, labels, input_ids)
    corrupted = input_ids.clone()
    corrupted[masked] = sampled.to(corrupted.dtype)
    replaced = corrupted != original
    if attention_mask is not None:
        replaced &= attention_mask.bool()
    return corrupted, replaced


class ElectraRTD(TrainingModule):
    """Joint generator + discriminator step; saved as the discriminator's class (``ElectraForPreTraining``,
    or ``BertForTokenClassification`` with one label for a BERT checkpoint) + ``generator/``."""

    main_input_name = "input_ids"

    def __init__(self, generator: nn.Module, discriminator: nn.Module, rtd_weight: float = 50.0,
                 temperature: float = 1.0, special_ids: list[int] | tuple[int, ...] = ()):
        super().__init__(discriminator.config)
        if temperature <= 0:
            raise ValueError(f"--gen-temperature must be > 0, got {temperature}")
        tie_embeddings(generator, discriminator)
        self.generator = generator
        self.discriminator = discriminator
        self.rtd_weight = rtd_weight
        self.temperature = temperature
        # Set by evaluation so the sampled replacements, hence the metrics, repeat across evals/runs.
        self.sample_generator: torch.Generator | None = None
        # not persistent: checkpoints and exports hold weights only
        self.register_buffer("special_ids", torch.tensor(sorted(set(special_ids)), dtype=torch.long), persistent=False)
        self._mark_aliases()

    def forward(self, input_ids, attention_mask=None, labels=None, token_type_ids=None,
                return_details: bool = False) -> dict[str, Any]:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        gen_logits, targets = masked_logits(self.generator, input_ids, attention_mask, labels, token_type_ids)
        gen = mlm_loss_terms(gen_logits, targets, anchor=gen_logits)
        rng = None if self.training else self.sample_generator
        sampled = sample_replacements(gen_logits, self.temperature, rng) if targets.numel() else targets
        corrupted, replaced = corrupt(input_ids, labels, sampled, attention_mask)
        disc_logits = self.discriminator(
            input_ids=corrupted, attention_mask=attention_mask, token_type_ids=token_type_ids).logits
        if disc_logits.dim() == 3:  # a *ForTokenClassification with one label (BERT-like discriminators)
            disc_logits = disc_logits.squeeze(-1)
        active = attention_mask.bool()
        if self.special_ids.numel():
            # on the original ids: the masked input holds [MASK], a special token, exactly where
            # replacements happen
            original = torch.where(labels != IGNORE, labels, input_ids) if labels is not None else input_ids
            active &= ~torch.isin(original, self.special_ids)
        scores, truth = disc_logits[active].float(), replaced[active].float()
        disc_loss = F.binary_cross_entropy_with_logits(scores, truth)
        out = {
            "loss": gen["loss"] + self.rtd_weight * disc_loss,
            "gen_loss": gen["loss"].detach(), "disc_loss": disc_loss.detach(),
            "ce_sum": gen["ce_sum"], "n_masked": gen["n_masked"], "n_correct": gen["n_correct"],
            "disc_bce_sum": F.binary_cross_entropy_with_logits(scores.detach(), truth, reduction="sum"),
            "n_tokens": active.sum(), "disc_correct": ((scores.detach() > 0) == truth.bool()).sum(),
            "n_replaced": replaced.sum(),
        }
        if return_details or not self.training:
            out.update(disc_scores=scores.detach(), disc_truth=truth)
        if return_details:
            out.update(corrupted_ids=corrupted, replaced=replaced, sampled=sampled)
        return out

    def export(self, directory: str | Path) -> None:
        """Discriminator at the top (loads as ElectraForPreTraining / AutoModel), generator in ``generator/``."""
        directory = Path(directory)
        self.discriminator.save_pretrained(directory)
        self.generator.save_pretrained(directory / GENERATOR_DIR)

    def exported(self) -> dict[str, nn.Module]:
        return {"discriminator": self.discriminator, "generator": self.generator}
