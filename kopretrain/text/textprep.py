"""The text preparation a model was trained with, recorded beside it and re-applied everywhere.

``kopretrain.json`` in a tokenizer/model directory records the normalizer config and the
pre-tokenization mode (``eojeol`` or ``morpheme``). pretrain, finetune, evaluate, label and the
released model all call :func:`load` + :meth:`TextPrep.prepare`, so training and inference see
identical input by construction.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TEXTPREP_FILE = "kopretrain.json"


@dataclass
class TextPrep:
    normalize: dict[str, Any] | None = None
    """NormalizeConfig fields used at training time (None: text is used as is)."""
    pretokenize: str = "eojeol"
    """``eojeol``: the tokenizer sees the text; ``morpheme``: kiwipiepy segments it first."""
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: str | Path) -> None:
        from kopretrain.runs.records import write_json

        write_json(Path(directory) / TEXTPREP_FILE, asdict(self))

    def prepare(self, texts: list[str]) -> list[str]:
        """Normalize (rules only: no rows are dropped at inference) and pre-tokenize texts."""
        out = list(texts)
        if self.normalize is not None:
            from kopretrain.text.normalizer import Normalizer

            check_rules(self.normalize)
            norm = Normalizer(normalizer_config(self.normalize))
            out = [norm.normalize(t) if isinstance(t, str) else t for t in out]
        if self.pretokenize == "morpheme":
            from kopretrain.text.pretokenize import check_kiwi_version, pretokenize_morphemes

            check_kiwi_version(self.extra.get("kiwipiepy"))
            out = pretokenize_morphemes(out)
        return out


def check_rules(normalize: dict[str, Any]) -> None:
    """Warn (once) when the normalize rules of this kopretrain treat text differently from the
    version a model's data was normalized with (its recorded ``rules_digest``): the model then sees
    inputs prepared a little differently from its training text."""
    from kopretrain.text.probes import rules_digest

    recorded = normalize.get("rules_digest")
    if not recorded or recorded in _warned or recorded == rules_digest(normalize):
        return
    import warnings

    _warned.add(recorded)
    warnings.warn("this model's training text was normalized by the rules of another kopretrain version "
                  f"(rules digest {recorded}, today's {rules_digest(normalize)}): its inputs are normalized by "
                  "today's rules, which change some texts differently; rerun normalize and the stages after it "
                  "(kopretrain run) to retrain on today's rules", stacklevel=3)


_warned: set[str] = set()


def normalizer_config(normalize: dict[str, Any]):
    """The recorded ``normalize`` fields as a NormalizerConfig (fields it does not know are ignored)."""
    from kopretrain.runs.config import from_dict
    from kopretrain.text.normalizer import NormalizerConfig

    return from_dict(NormalizerConfig, _known(NormalizerConfig, normalize))


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def load(directory: str | Path) -> TextPrep | None:
    """The TextPrep recorded in a model/tokenizer directory, or None if it has none."""
    path = Path(directory) / TEXTPREP_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return TextPrep(**{k: v for k, v in data.items() if k in ("normalize", "pretokenize", "extra")})
