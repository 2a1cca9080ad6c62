"""Start a fine-tune again with another seed when it is stuck at chance.

Some seeds of some checkpoints never leave chance: the training loss stays at ln 3 and dev
macro-F1 at what answering one label everywhere scores (the continued e5 checkpoints of
BENCHMARKS.md: WWM at 10k labels, seed 3; RTD at 1k labels). Fine-tuning instability of this kind
is well documented (Mosbach et al. 2021, "On the stability of fine-tuning BERT"), and a stuck seed
shows itself in the first evaluations, so it can be discarded early and the time given to another
(Dodge et al. 2020, "Fine-tuning pretrained language models: weight initializations, data orders,
and early stopping"). The label-budget sample stays the same: a restart changes the head's
initialisation (a head or pooler the checkpoint lacks), the data order and dropout, not the data.

A killed run resumes inside the attempt it was in: ``attempt.json`` in the stage's partial
folder says which attempt (its seed) and the minutes of the time budget earlier attempts used.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import TrainerCallback

ATTEMPT_FILE = "attempt.json"
STUCK_EVALS = 2
"""Dev evaluations that must all sit at chance before a run counts as stuck."""
SEED_STEP = 1000
"""Attempt i trains with seed + i * SEED_STEP."""
MARGIN = 0.05
"""How far above the one-label macro-F1 a run has to get to count as learning."""


def one_label_macro_f1(labels) -> float:
    """Macro-F1 of answering the most common label for every row, over the classes present."""
    counts = Counter(labels)
    share = max(counts.values()) / sum(counts.values())
    return (2 * share / (1 + share)) / len(counts)


class StuckGuard(TrainerCallback):
    """Stops training when the first ``evals`` dev evaluations all score below chance + ``margin``.

    Reads ``state.log_history``, which a resumed run restores, so evaluations before a kill count."""

    def __init__(self, dev_labels, evals: int = STUCK_EVALS, margin: float = MARGIN):
        self.chance = one_label_macro_f1(dev_labels)
        self.evals, self.margin = evals, margin
        self.stuck = False

    def on_train_begin(self, args, state, control, **kwargs):
        # a run killed just after the guard stopped it resumes from the checkpoint of that very
        # evaluation (it is saved after the decision): decide again before training on
        self._judge(state, control)

    def on_evaluate(self, args, state, control, **kwargs):
        self._judge(state, control)

    def _judge(self, state, control) -> None:
        if self.stuck:
            return
        scores = [h["eval_macro_f1"] for h in state.log_history if "eval_macro_f1" in h][:self.evals]
        if len(scores) == self.evals and all(s < self.chance + self.margin for s in scores):
            print(f"[finetune] stuck at chance: dev macro-F1 {', '.join(f'{s:.3f}' for s in scores)} "
                  f"(one label everywhere: {self.chance:.3f}); stopping this seed")
            self.stuck = True
            control.should_training_stop = True


def warn_if_single_class(best: dict, dev_labels) -> bool:
    """Whether the selected model gives every dev row one label although dev has several: a
    fine-tune stuck at chance. Said loudly, not saved silently as if it were a classifier."""
    stuck = best.get("eval_predicted_classes", 2) < 2 and len(set(dev_labels)) > 1
    if stuck:
        print("[finetune] warning: the selected model predicts one label for every dev row: training never "
              "left chance. Try --restarts, another --seed, a higher --head-lr, or the checkpoint before "
              "continued pretraining (BENCHMARKS.md, the stalled fine-tunes)")
    return stuck


@dataclass
class Attempt:
    """Which try of a fine-tune this is, and what the ones before it used."""
    index: int = 0
    seed: int = 0
    minutes_before: float = 0.0
    """Minutes of the time budget that earlier attempts spent (0 without a budget)."""
    history: list[dict] = field(default_factory=list)
    """One entry per earlier attempt: its seed, dev macro-F1 evaluations and minutes."""
    fresh: bool = False
    """Not started yet: checkpoints in the folder belong to the attempt before (a restart saves
    this before it deletes them, so a kill in between cannot resume the new seed from them)."""

    def save(self, folder: Path) -> None:
        from kopretrain.runs.records import write_json

        write_json(Path(folder) / ATTEMPT_FILE, asdict(self))

    @classmethod
    def load(cls, folder: Path, seed: int) -> "Attempt":
        """The attempt a resumed run was in; the first attempt for a new run."""
        path = Path(folder) / ATTEMPT_FILE
        if path.is_file():
            return cls(**json.loads(path.read_text()))
        return cls(seed=seed)

    def next(self, dev_scores: list[float], minutes: float) -> "Attempt":
        record = {"seed": self.seed, "dev_macro_f1": [round(s, 4) for s in dev_scores], "minutes": round(minutes, 3)}
        # + 1000, not + 1: a restart of seed 1 must not repeat the user's own seed-2 run
        return Attempt(self.index + 1, self.seed + SEED_STEP, self.minutes_before + minutes, [*self.history, record],
                       fresh=True)

    def whole_budget(self, record: dict | None) -> dict | None:
        """The last attempt's time-budget record widened to the whole fine-tune: its budget and
        minutes plus those of the attempts before it."""
        if not record or not self.minutes_before:
            return record
        return {**record, "max_minutes": round(record["max_minutes"] + self.minutes_before, 3),
                "spent_minutes": round(record["spent_minutes"] + self.minutes_before, 3),
                "last_attempt_minutes": record["spent_minutes"]}
