"""Loading a sentiment classifier directory (or Hub id) with the TextPrep it was trained with.

Shared by ``finetune``, ``evaluate`` and ``label`` so that every stage resolves models, label
orders and text preparation the same way::

    clf = Classifier.load("runs/nsmc/finetune")           # model + tokenizer + kopretrain.json
    probs = clf.predict_proba(["배송 빨랐어요 최고", "별로예요"])  # (2, 3): negative, neutral, positive

Probabilities are always returned in :data:`kopretrain.data.files.LABELS` order, whatever order the
model's ``id2label`` uses. Weights load through safetensors only; remote code is never trusted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from kopretrain.data.files import LABELS
from kopretrain.hub.loading import check_model_ref, load_config, load_tokenizer, load_weights, usable_positions
from kopretrain.runs.chain import upstream
from kopretrain.runs.records import StageError
from kopretrain.text.textprep import TextPrep, load as load_textprep_file


def resolve_textprep(model: str, data: str | None = None, revision: str | None = None) -> tuple[TextPrep, str]:
    """The TextPrep to train/predict with, and where it came from.

    A kopretrain model carries ``kopretrain.json``; a Hub model has none, so we record the
    normalize config of the data it is fine-tuned on (``upstream(data, "normalize")``), or plain
    text when the data was never normalized.
    """
    from kopretrain.hub.loading import model_file

    found = model_file(model, "kopretrain.json", revision)  # a Hub id's too, at its revision
    prep = load_textprep_file(found.parent) if found is not None else None
    if prep is not None:
        return prep, f"{model}/kopretrain.json" + (f" (revision {revision})" if revision else "")
    record = upstream(data, "normalize") if data else None
    if record is not None:
        return TextPrep(normalize=recorded_rules(record)), f"normalize stage of {data}"
    return TextPrep(), "none (text used as is)"


# normalize config fields that say where/how fast to run, not what the text becomes (and the
# digest of the rules' behaviour, which is what a version did with them, not a setting)
_NOT_RULES = ("input", "output", "data", "num_workers", "batch_size", "rules_digest")


def normalize_fields(config: dict[str, Any]) -> dict[str, Any]:
    """A normalize stage config without its I/O and speed fields (only the rules matter)."""
    return {k: v for k, v in config.items() if k not in _NOT_RULES}


def recorded_rules(record: dict[str, Any]) -> dict[str, Any]:
    """The rules of a normalize stage record, for a ``kopretrain.json``: its settings and, when the
    record has it, the digest of what its kopretrain version's rules did (``rules_digest``), so a
    model can tell when today's rules would prepare its inputs differently (``TextPrep.prepare``)."""
    digest = (record.get("behaviour") or {}).get("rules")
    return {**normalize_fields(record["config"]), **({"rules_digest": digest} if digest else {})}


def input_texts(frame, prep: TextPrep, data: str | None = None) -> list[str]:
    """Texts of a data frame as the model must see them.

    When the model's normalizer differs from the one that produced ``text`` (e.g. a model
    pretrained with other rules), normalize ``text_raw`` with the model's rules; otherwise
    ``text`` already equals normalize(text_raw) and only pre-tokenization is applied.
    """
    if "text" not in frame.columns:
        raise StageError(f"no 'text' column; columns are: {', '.join(map(str, frame.columns))}")
    record = upstream(data, "normalize") if data else None
    same_rules = record is not None and prep.normalize is not None and \
        normalize_fields(record["config"]) == normalize_fields(prep.normalize)
    if prep.normalize is not None and "text_raw" in frame.columns and not same_rules:
        column = "text_raw"
    else:
        column = "text"
        if same_rules:  # already normalized by identical rules; normalize is idempotent
            prep = TextPrep(normalize=None, pretokenize=prep.pretokenize, extra=prep.extra)
    texts = ["" if t is None else str(t) for t in frame[column].tolist()]
    return prep.prepare(texts)


def label_order(config, model: str = "model") -> list[str]:
    """Model output index -> our label name; explains what is wrong with other label sets."""
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    names = [id2label[i].lower() for i in sorted(id2label)]
    if sorted(names) == sorted(LABELS):
        return names
    if not names or all(n.startswith("label_") for n in names):
        raise StageError(
            f"{model}: config.json has no sentiment labels (id2label = {id2label or 'none'}); this is not a "
            "fine-tuned classifier. Fine-tune it first: kopretrain finetune --model " + str(model)
        )
    raise StageError(
        f"{model}: id2label {id2label} is not negative/neutral/positive. kopretrain classifiers are 3-class; "
        "a binary or other-label model cannot be scored against these labels (re-finetune it with kopretrain)."
    )


class Classifier:
    """A loaded sequence classifier + tokenizer + TextPrep, ready for batched inference."""

    def __init__(self, model, tokenizer, prep: TextPrep, labels: list[str], name: str, max_length: int = 128,
                 ngram=None):
        self.model = model.eval()
        self.ngram = ngram  # finetune --ngram-blend's expert (kopretrain/inference/ngram.py), pooled into logits
        self.tokenizer = tokenizer
        self.prep = prep
        self.labels = labels
        self.name = name
        self.max_length = max_length
        self.scorer = None

    @classmethod
    def load(cls, model: str, revision: str | None = None, data: str | None = None,
             max_length: int | None = None) -> "Classifier":
        """``max_length`` None/0: the length the model was fine-tuned with (kopretrain.json), else 128."""
        from transformers import AutoModelForSequenceClassification

        check_model_ref(model, revision=revision)
        config = load_config(model, revision)
        labels = label_order(config, model)
        net = load_weights(AutoModelForSequenceClassification, model, revision)
        tok = load_tokenizer(model, revision)
        prep, _ = resolve_textprep(model, data, revision)
        max_length = max_length or int(prep.extra.get("max_length", 128))
        limit = usable_positions(config) or max_length
        from kopretrain.inference.ngram import NgramExpert

        return cls(net, tok, prep, labels, model, max_length=min(max_length, limit), ngram=NgramExpert.load(model, revision))

    def logits(self, texts: Sequence[str], batch_size: int = 64, prepared: bool = False, precision: str = "fp32",
               blend: bool = True):
        """(N, 3) float32 logits in LABELS order, through :class:`~kopretrain.inference.scoring.Scorer`
        (``precision``: one of its PRECISIONS; the scorer, and what ``auto`` chose, is kept in ``self.scorer``).
        A model with an n-gram expert returns the pooled scores unless ``blend`` is False."""
        from kopretrain.inference.scoring import Scorer

        texts = list(texts) if prepared else self.prep.prepare(list(texts))
        if self.scorer is None or (self.scorer.batch_size, self.scorer.requested) != (batch_size, precision):
            self.scorer = Scorer(self, precision, batch_size)
        return self.scorer.logits(texts, blend)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64, prepared: bool = False):
        return softmax(self.logits(texts, batch_size=batch_size, prepared=prepared))


def softmax(logits, temperature: float = 1.0):
    import numpy as np

    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def read_split(data: str, split: str, need_label: bool = True):
    """One split of a data stage output as a DataFrame, with the checks every stage needs:
    the file exists and is not empty, ``text`` (and ``label``) columns exist, labels are known."""
    import pandas as pd

    from kopretrain.data.files import split_files

    files = split_files(data)
    if split not in files:
        raise StageError(f"{data}: no {split}.parquet (found: {', '.join(f.name for f in files.values())})")
    path = files[split]
    frame = pd.read_parquet(path)
    required = ["text"] + (["label"] if need_label else [])
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise StageError(f"{path}: missing column(s) {', '.join(missing)}; columns are: "
                         f"{', '.join(map(str, frame.columns)) or 'none'}")
    if frame.empty:
        raise StageError(f"{path}: the file has no rows")
    if need_label:
        bad = sorted(set(frame["label"].dropna()) - set(LABELS))
        if bad:
            raise StageError(f"{path}: column label has values {bad[:5]}; expected {', '.join(LABELS)} (or null)")
    return frame.reset_index(drop=True)
