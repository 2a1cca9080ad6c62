"""Morpheme pre-tokenization: mark kiwipiepy morpheme boundaries inside eojeols with ``￭``.

``"재밌어요ㅋㅋ 최고"`` -> ``"재밌￭어요￭ㅋㅋ 최고"``: whitespace still separates eojeols, ``￭`` (U+FFED,
OpenNMT's joiner mark) separates morphemes inside one, so a tokenizer trained on such text never
makes a token that crosses a morpheme boundary (the vocab stage's docstring shows the tokens).
Special tokens and normalizer placeholders (``[URL]``) are atoms: never cut inside or beside.
"""

from __future__ import annotations

import functools
import re
from typing import Iterable

from kopretrain.text.rules import PLACEHOLDER_TOKENS
from kopretrain.tokenizer.specials import SPECIAL_TOKENS

JOINER = "\uffed"  # ￭: marks a morpheme boundary inside an eojeol
JOINER_ESCAPE = "\u25a0"  # ■: a literal ￭ in the text is shown as ■ so it cannot fake a boundary


def placeholder_tokens() -> tuple[str, ...]:
    """The normalizer's placeholders (``[URL]`` ...): single tokens in every vocab we build."""
    return tuple(PLACEHOLDER_TOKENS)


@functools.lru_cache(maxsize=1)
def _protected_re() -> re.Pattern:
    atoms = sorted(set(SPECIAL_TOKENS) | set(placeholder_tokens()), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, atoms)))


# ------------------------------------------------------------------ morpheme pre-tokenization


def _kiwi():
    """The process's shared Kiwi (:func:`kopretrain.text.kiwi.get_kiwi`: the same analyzer and
    placeholder handling as the analyze stage, so its stored offsets segment text identically)."""
    from kopretrain.text.kiwi import get_kiwi

    return get_kiwi()


def segment(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """Insert ``￭`` into ``text`` at the morpheme boundaries given by ``(start, end)`` spans.

    A cut is made where a morpheme starts or ends strictly inside an eojeol and no morpheme
    spans across it, so contracted syllables stay whole: ``했어요`` (하+었 | 어요) becomes
    ``했￭어요`` but ``아님`` (아니+ㅁ share 님) stays ``아님``. Placeholders (``[URL]``) are atoms
    with no cut inside or beside them. Whitespace runs become one space.
    """
    spans = [(s, e) for s, e in spans if e > s]
    n = len(text)
    cuts = set()
    for s, e in spans:
        for p in (s, e):
            if 0 < p < n and not text[p - 1].isspace() and not text[p].isspace():
                cuts.add(p)
    if cuts:
        inside = set()
        for s, e in spans:
            inside.update(range(s + 1, e))
        for m in _protected_re().finditer(text):
            inside.update(range(m.start(), m.end() + 1))
        cuts -= inside
    chars = [JOINER_ESCAPE if c == JOINER else c for c in text]
    for p in sorted(cuts, reverse=True):
        chars.insert(p, JOINER)
    return " ".join("".join(chars).split())


def pretokenize_morphemes(texts: list[str]) -> list[str]:
    """Mark kiwipiepy morpheme boundaries inside eojeols with ``￭`` (see the module docstring).

    >>> pretokenize_morphemes(["재밌어요ㅋㅋ [URL] 최고!!"])
    ['재밌￭어요￭ㅋㅋ [URL] 최고￭!!']

    Non-string items (None) pass through unchanged. Kiwi reads the list on its worker threads.
    """
    out = list(texts)
    idx = [i for i, t in enumerate(out) if isinstance(t, str)]
    for i, tokens in zip(idx, _kiwi().tokenize([out[i] for i in idx])):
        out[i] = segment(out[i], [(t.start, t.start + t.len) for t in tokens])
    return out


def check_kiwi_version(recorded: str | None) -> None:
    """Warn (once) when kiwipiepy differs from the version a morpheme-mode tokenizer was trained with:
    its segmentation, and so the token ids, may differ from training."""
    from importlib import metadata

    installed = metadata.version("kiwipiepy")
    if recorded and recorded != installed and recorded not in _warned:
        import warnings

        _warned.add(recorded)
        warnings.warn(f"morpheme-mode tokenizer was trained with kiwipiepy {recorded}, installed is {installed}: "
                      "segmentation may differ from training; install the recorded version", stacklevel=3)


_warned: set[str] = set()


def segment_from_offsets(texts, starts, lens) -> list[str]:
    """:func:`segment` with the analyze stage's stored ``morph_start``/``morph_len`` columns."""
    return [segment(t, [(s, s + n) for s, n in zip(st or (), ln or ())]) if isinstance(t, str) else t
            for t, st, ln in zip(texts, starts, lens)]
