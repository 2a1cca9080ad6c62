"""The normalizer: a chain of named, counted rules (:mod:`kopretrain.text.rules`) plus a quality filter.

What the normalize stage runs over a corpus and what training and inference re-apply to every
text (via :mod:`kopretrain.text.textprep`; ``normalize`` never drops a text, ``check`` says why a
stage would)::

    norm = Normalizer(NormalizerConfig())
    norm.normalize("배송 빨랐어욬ㅋㅋㅋㅋ 100000원!!!!!")   # -> "배송 빨랐어욬ㅋㅋ 100000원!!"
    norm.check("")                                          # -> "empty"
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Optional

from kopretrain.text.rules import EMOJI_RE, PLACEHOLDER_RE, RULE_NAMES, build_rules

_LINK_PLACEHOLDERS = ("[URL]", "[EMAIL]", "[PHONE]", "[USER]")
_HANGUL_LETTER = re.compile("[가-힣ㄱ-ㆎ]")
_OTHER_LETTER = re.compile(r"[^\W\d_가-힣ㄱ-ㆎ]")  # letters of any other script (\w minus digits, _)


@dataclass
class NormalizerConfig:
    """The rules and quality filter of :class:`Normalizer` (the normalize stage adds its input and
    batch size; the model directories record these fields in ``kopretrain.json``)."""

    emoji: Literal["keep", "map"] = "keep"
    """keep: emoji stay (😍 vs 😡 carry sentiment, and byte-level or extended vocabularies can hold
    them); map: every emoji becomes the [EMOJI] token (a run of them gives at most max_repeat)."""
    max_repeat: int = 2
    """Longest run of one repeated character that is kept: ㅋㅋㅋㅋㅋ -> ㅋㅋ, 와하하하하하 -> 와하하,
    !!!!! -> !!. Digits never collapse (100000원 stays)."""
    skip_rules: list[str] = field(default_factory=list)
    """Rule names to switch off, e.g. [censor, phone]. Rules: nfc, invisible, fullwidth,
    compat_jamo, whitespace, email, url, phone, mention, censor, emoji, repeat, spacing, typos."""
    spacing: bool = False
    """Also fix spacing with kiwipiepy Kiwi.space (about 15x slower than the regex rules alone)."""
    typos: Literal["none", "basic", "continual", "basic_with_continual", "lengthening",
                   "basic_with_continual_and_lengthening"] = "none"
    """Also correct typos word by word with kiwipiepy's typo model (잼있어요 -> 재밌어요). Slow, and it
    makes some wrong fixes (유지태 -> 류지태), so it is off by default."""
    num_workers: int = 0
    """Threads for the kiwipiepy rules (spacing, typos); 0 = all cores."""
    min_chars: int = 1
    """Drop texts shorter than this (too_short). 1 keeps one-character reviews such as 굿 or ㅋ;
    empty texts are always dropped (empty)."""
    max_chars: int = 5000
    """Drop texts longer than this many characters (too_long): pasted articles, not reviews."""
    min_hangul_ratio: float = 0.1
    """Drop texts whose letters are less than this share Hangul (too_little_hangul), counting only
    texts with at least hangul_min_letters letters: short reviews such as "good!!" or 👍 are kept,
    long foreign-language texts and Korean typed on an English keyboard ("dl dudghk wjdakf") are
    dropped. 0 switches the filter off."""
    hangul_min_letters: int = 20
    """Texts with fewer letters than this are never dropped as too_little_hangul."""
    drop_placeholder_only: bool = True
    """Drop texts that are only links/e-mails/phones/mentions once those become placeholders
    (placeholder_only: link spam such as a bare blog URL)."""

    def __post_init__(self) -> None:
        if self.max_repeat < 1:
            raise ValueError(f"--max-repeat: must be >= 1 (got {self.max_repeat})")
        unknown = sorted(set(self.skip_rules) - set(RULE_NAMES))
        if unknown:
            raise ValueError(f"--skip-rules: unknown rule(s) {', '.join(unknown)}; rules: {', '.join(RULE_NAMES)}")
        # a set: "phone,censor" and "censor,phone,phone" are one config (one key, no rerun)
        self.skip_rules = sorted(set(self.skip_rules))
        if self.num_workers < 0:
            raise ValueError(f"--num-workers: must be >= 0 (0 = all cores), got {self.num_workers}")
        if self.hangul_min_letters < 0:
            raise ValueError(f"--hangul-min-letters: must be >= 0, got {self.hangul_min_letters}")
        if self.min_chars < 0 or self.max_chars < max(self.min_chars, 1):
            raise ValueError(f"--max-chars: must be >= max(1, --min-chars) (got {self.max_chars}, {self.min_chars})")
        if not 0.0 <= self.min_hangul_ratio <= 1.0:
            raise ValueError(f"--min-hangul-ratio: must be within [0, 1] (got {self.min_hangul_ratio})")


class Normalizer:
    """The rule chain of a :class:`NormalizerConfig` plus its quality filter.

    ``normalize`` is idempotent (``normalize(normalize(x)) == normalize(x)``), ``counts`` holds
    rule name -> texts changed, ``examples`` one ``(before, after)`` per rule, ``reasons`` the
    filter reasons seen by ``check``.
    """

    def __init__(self, cfg: Optional[NormalizerConfig] = None):
        self.cfg = cfg = cfg or NormalizerConfig()
        skip = set(cfg.skip_rules)
        self.rules = [(n, r) for n, r in build_rules(cfg.max_repeat, cfg.emoji) if n not in skip]
        self.batch_rules = []
        if cfg.spacing and "spacing" not in skip:
            from kopretrain.text.kiwi import Spacing

            self.batch_rules.append(("spacing", Spacing(cfg.num_workers)))
        if cfg.typos != "none" and "typos" not in skip:
            from kopretrain.text.kiwi import Typos

            self.batch_rules.append(("typos", Typos(cfg.typos, cfg.num_workers)))
        names = [n for n, _ in self.rules + self.batch_rules]
        self.counts: Counter[str] = Counter({n: 0 for n in names})
        self.examples: dict[str, tuple[str, str]] = {}
        self.reasons: Counter[str] = Counter()

    # ------------------------------------------------------------------ rules
    def _apply(self, text: str) -> str:
        out = self._chain(text)
        # --max-repeat 1 shortens the ".." and "oo" the link rules rely on ("good..com" -> "god.com", a
        # bare domain): the chain runs again until nothing changes. With 2 or more, pairs survive.
        for _ in range(2 if self.cfg.max_repeat == 1 and out != text else 0):
            again = self._chain(out)
            if again == out:
                break
            out = again
        return out

    def _chain(self, text: str) -> str:
        counts = self.counts
        for name, rule in self.rules:
            out = rule(text)
            if out != text:
                counts[name] += 1
                if name not in self.examples:
                    self.examples[name] = (text, out)
                text = out
        return text

    def normalize(self, text: str) -> str:
        """Apply every rule to one text (never drops it; see :meth:`check`)."""
        if self.batch_rules:
            return self.normalize_many([text])[0]
        return self._apply(text) if text else ""

    def normalize_many(self, texts: list[str]) -> list[str]:
        """Normalize a batch (the kiwipiepy rules, when on, run multi-threaded over it)."""
        out = [self._apply(t) if t else "" for t in texts]
        for name, rule in self.batch_rules:
            new = rule.apply_many(out)
            for before, after in zip(out, new):
                if after != before:
                    self.counts[name] += 1
                    self.examples.setdefault(name, (before, after))
            out = new
        if self.batch_rules:  # spacing can make new matches ("재밌어요@영화광님" gets its space before "@")
            out = [self._apply(t) if t else "" for t in out]  # so normalize(normalize(x)) == normalize(x)
        return out

    # ------------------------------------------------------------------ filter
    def check(self, text: Optional[str]) -> Optional[str]:
        """The reason to drop a *normalized* text, or None to keep it.

        ``check("최고")`` -> None; ``check("")`` -> ``"empty"``; ``check("[URL]")`` ->
        ``"placeholder_only"``.
        """
        reason = self._reason(text)
        if reason:
            self.reasons[reason] += 1
        return reason

    def _reason(self, text: Optional[str]) -> Optional[str]:
        cfg = self.cfg
        if not text or not text.strip():
            return "empty"
        if len(text) < cfg.min_chars:
            return "too_short"
        if len(text) > cfg.max_chars:
            return "too_long"
        has_placeholder = "[" in text and PLACEHOLDER_RE.search(text) is not None
        if cfg.drop_placeholder_only and has_placeholder:
            rest = text
            for p in _LINK_PLACEHOLDERS:
                rest = rest.replace(p, "")
            if rest != text and not any(c.isalnum() for c in rest) and not EMOJI_RE.search(rest):
                return "placeholder_only"
        if cfg.min_hangul_ratio > 0:
            # Placeholders are Latin letters that the writer did not type.
            plain = PLACEHOLDER_RE.sub("", text) if has_placeholder else text
            # Most reviews have no non-Hangul letter at all: one regex search settles them.
            if _OTHER_LETTER.search(plain):
                other = len(_OTHER_LETTER.findall(plain))
                hangul = len(_HANGUL_LETTER.findall(plain))
                letters = other + hangul
                if letters >= cfg.hangul_min_letters and hangul < cfg.min_hangul_ratio * letters:
                    return "too_little_hangul"
        return None
