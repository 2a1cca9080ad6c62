"""The normalizer rules as a ``tokenizers`` normalizer, so a saved tokenizer normalizes raw text itself.

``transformers.pipeline`` feeds raw text to the tokenizer; a kopretrain model was trained on text
that :mod:`kopretrain.text.rules` rewrote first. :func:`tokenizer_rules` translates a recorded
normalizer config into ``tokenizers.normalizers`` steps (``NFC``, ``Replace(Regex(...), ...)``,
``Strip``) that give the same text, and names the rules it cannot translate (the kiwipiepy ones)::

    rules = tokenizer_rules({"emoji": "keep", "max_repeat": 2})
    normalizers.Sequence(rules.steps).normalize_str("배송 빨랐어욬ㅋㅋㅋㅋ!!!!!")  # "배송 빨랐어욬ㅋㅋ!!"
    rules.applied      # ["nfc", "invisible", ..., "repeat"]
    rules.not_applied  # {} ; {"spacing": "..."} when spacing is on

Every pattern here mirrors one in :mod:`kopretrain.text.rules` (change both together; the tests in
tests/text/test_tokenizer_rules.py compare the two on hard review strings and the bundled sample).
The regex engine is Oniguruma: lookarounds and backreferences work inside a pattern, but a
replacement is a fixed string, so rules whose Python replacement depends on the match are
rewritten so that the match itself is what changes:

- ``url`` gives trailing punctuation back (``http://a.com!!`` -> ``[URL]!!``): the pattern stops
  before it instead of re-emitting it.
- ``mention`` keeps @-quotes when a later ``x@`` closes them: a negative lookahead decides.
- ``emoji`` (map) emits ``min(count, max_repeat)`` tokens: one Replace per count, largest first.
- ``repeat`` keeps ``max_repeat`` copies: every copy that has ``max_repeat`` equal characters
  after it is deleted (``(c)(?=\\1{n})`` -> ``""``), which covers every character in one pass.

Python's ``\\s`` and ``\\d`` (``str.isspace``/``str.isdecimal``) differ from Oniguruma's (``\\x1c``-``\\x1f``
are spaces only to Python), so both are spelled out as code-point classes built from Python itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from kopretrain.text import rules as R

# Rules that need kiwipiepy: no tokenizers normalizer can run a morphological analyzer. The share
# is measured on 10,000 NSMC test reviews after the other rules (benchmarks/bench_tokenizer_normalizer.py).
KIWI_RULES = {
    "spacing": "kiwipiepy spacing correction (Kiwi.space) cannot run inside a tokenizer; it rewrites 74.9% "
               "of NSMC reviews, so a plain pipeline gives those reviews other token ids than kopretrain label",
    "typos": "kiwipiepy typo correction cannot run inside a tokenizer; with typos=basic it rewrites 6.3% of "
             "NSMC reviews, so a plain pipeline gives those reviews other token ids than kopretrain label",
}
# Open and close our steps inside tokenizer.json (tokenizers flattens nested Sequences), so a later
# save can find and replace them. A comment then an empty lookahead that always fails: the step
# never matches and never edits text.
BEGIN = "(?#kopretrain normalizer: the rules of kopretrain.json, see kopretrain.text.tokenizer_rules)(?!)"
END = "(?#end of the kopretrain normalizer)(?!)"


@dataclass
class TokenizerRules:
    steps: list = field(default_factory=list)
    """``tokenizers.normalizers`` objects, in the order the Python chain runs, between markers."""
    applied: list[str] = field(default_factory=list)
    """Rule names the steps reproduce exactly."""
    not_applied: dict[str, str] = field(default_factory=dict)
    """Rule name -> why the tokenizer cannot apply it."""


def tokenizer_rules(normalize: dict[str, Any]) -> TokenizerRules:
    """The recorded normalizer config (``kopretrain.json`` ``normalize``) as tokenizers steps."""
    from tokenizers import Regex, normalizers

    from kopretrain.text.textprep import normalizer_config

    cfg = normalizer_config(normalize)  # read exactly as TextPrep.prepare reads it (defaults, checks)
    skip = set(cfg.skip_rules)
    out = TokenizerRules(steps=[normalizers.Replace(Regex(BEGIN), "")])
    chain = []
    for name, _ in R.build_rules(cfg.max_repeat, cfg.emoji):
        if name in skip:
            continue
        chain += TRANSLATIONS[name](cfg.max_repeat)
        out.applied.append(name)
    # max_repeat 1: Normalizer runs its chain up to three times, until nothing changes; three times
    # here is the same text (a chain over text it left unchanged changes nothing)
    out.steps += chain * (3 if cfg.max_repeat == 1 else 1)
    out.steps.append(normalizers.Replace(Regex(END), ""))
    if cfg.spacing and "spacing" not in skip:
        out.not_applied["spacing"] = KIWI_RULES["spacing"]
    if cfg.typos != "none" and "typos" not in skip:
        out.not_applied["typos"] = KIWI_RULES["typos"]
    return out


# ------------------------------------------------------------------ character classes


def esc(text: str) -> str:
    """Every character as an Oniguruma ``\\x{...}`` escape (safe inside and outside classes)."""
    return "".join(f"\\x{{{ord(c):X}}}" for c in text)


def esc_ranges(body: str) -> str:
    """A Python class body made only of characters and ``a-b`` ranges (like ``rules._E``), escaped."""
    out, i = [], 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            out.append(f"{esc(body[i])}-{esc(body[i + 2])}")
            i += 3
        else:
            out.append(esc(body[i]))
            i += 1
    return "".join(out)


@functools.lru_cache(maxsize=None)
def python_class(kind: str) -> str:
    """Python ``re``'s ``\\s`` (``space``) or ``\\d`` (``digit``) as a class body of code-point ranges."""
    test = str.isspace if kind == "space" else str.isdecimal
    ranges: list[tuple[int, int]] = []
    for cp in range(0x110000):
        if test(chr(cp)):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(esc(chr(a)) if a == b else f"{esc(chr(a))}-{esc(chr(b))}" for a, b in ranges)


def _space() -> str:
    return python_class("space")


def _digit() -> str:
    return python_class("digit")


# ------------------------------------------------------------------ one translation per rule


def _replace(pattern: str, content: str):
    from tokenizers import Regex, normalizers

    return normalizers.Replace(Regex(pattern), content)


def _nfc(_: int) -> list:
    from tokenizers import normalizers

    return [normalizers.NFC()]


def _invisible(_: int) -> list:
    # rules._CONTROL then rules._INVISIBLE; the ZWJ survives after an emoji or U+FE0F.
    control = "[\\x{0}-\\x{8}\\x{B}\\x{C}\\x{E}-\\x{1F}\\x{7F}-\\x{9F}\\x{3164}\\x{FFA0}]"
    marks = "\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    invisible = f"[{esc_ranges(marks)}]|(?<![{esc_ranges(R._E)}\\x{{FE0F}}])\\x{{200D}}"
    return [_replace(control, " "), _replace(invisible, "")]


def _fullwidth(_: int) -> list:
    # One literal Replace per character: a replacement cannot be computed from the match.
    return [*(_replace(esc(chr(c)), chr(c - 0xFEE0)) for c in range(0xFF01, 0xFF5F)),
            _replace("(?<=[0-9#*])[\\x{FE0F}\\x{20E3}]*\\x{20E3}", "")]  # rules._KEYCAP


def _compat_jamo(_: int) -> list:
    # One literal per source jamo: a literal search costs half a one-character class scan.
    return [_replace(esc(chr(source)), target) for source, target in R._JAMO.items()]


def _whitespace(_: int) -> list:
    from tokenizers import normalizers

    # After the collapse the only whitespace left is " ", which is all Strip has to remove
    # (Rust's whitespace set is a subset of Python's).
    return [_replace(f"[{_space()}]+", " "), normalizers.Strip()]


def _email(_: int) -> list:
    return [_replace(R._EMAIL.pattern, "[EMAIL]")] * 2  # twice, as rules.email


def _url(_: int) -> list:
    # rules._URL with rules._url_sub folded in: the match ends before trailing [.,!?;:)~] so the
    # punctuation stays in the text. u: a URL character, n: one that is not trailing punctuation.
    stop = f"{_space()}{R.URL_STOP}"
    u, tail = f"[^{stop}]", "[.,!?;:)~]"
    n = f"[^{stop}.,!?;:)~]"
    end = f"(?={tail}*(?!{u}))"
    # The body ends at a ")" closing a "(" of the link (rules._URL_CLOSED), tried first because it
    # ends later than the last non-punctuation character whenever it applies; else at that character.
    body = f"(?:{u}*\\([^{stop}()]*\\)|{u}*{n})"
    scheme = f"{R.URL_SCHEME}(?={u})(?:{body})?{end}"
    # "www." + only punctuation: Python's tail regex also gives back the "." of "www.".
    www = f"[Ww]{{3}}\\.{body}{end}|[Ww]{{3}}(?=\\.{tail}+(?!{u}))"
    bare = f"{R.BARE_DOMAIN}(?:/(?:{body})?{end}|(?![A-Za-z0-9_\\[-]))"
    return [_replace(f"{scheme}|{www}|{bare}", "[URL]")]


def _phone(_: int) -> list:
    return [_replace(R.phone_pattern(_digit()), "[PHONE]")] * R.PHONE_PASSES  # as rules.phone


def _mention(_: int) -> list:
    # rules.mention keeps a match when "x@" (x in rules.CLOSING_BEFORE) occurs anywhere after the
    # match's first character: a negative lookahead over the rest of the text.
    s = _space()
    pattern = (f"(?:\\A|(?<=[{s}]))(?![\\s\\S][\\s\\S]*?[{R.CLOSING_BEFORE}]@)"
               f"{R.MENTION_HANDLE}")
    return [_replace(pattern, "[USER]")]


def _censor(_: int) -> list:
    w, s = "가-힣A-Za-z", _space()
    pattern = (r"(?<![A-Za-z0-9])(?:O{2,}|X{2,})(?![A-Za-z0-9])"
               r"|[○◯●◎×]{2,}"
               f"|(?<=[{w}])\\*+(?=[{w}])|(?<=[{w}])\\*{{2,}}|\\*{{2,}}(?=[{w}])"
               f"|(?<=[^{s}] )\\*{{2,}}(?= [^{s}])")
    return [_replace(pattern, "[CENSORED]")]


def _emoji(max_repeat: int) -> list:
    # rules.EmojiToken: a run of emoji (+ modifiers) -> "[EMOJI]" * min(bases, max_repeat), bases
    # counted in the run alone, so its first character counts unless it is a skin tone.
    e, skin = esc_ranges(R._E), esc_ranges(R._SKIN)
    y = f"[{e}\\x{{FE0E}}\\x{{FE0F}}\\x{{200D}}\\x{{20E3}}]"
    base = f"(?<![\\x{{200D}}\\x{{1F1E6}}-\\x{{1F1FF}}])(?![{skin}])[{e}]"
    # rules.EmojiToken._FLAG first: a flag becomes one stand-in pictograph
    steps = [_replace(f"[{esc_ranges(R._RI)}]{{2}}", "\U0001F3F3")]
    for count in range(max_repeat, 1, -1):  # runs with >= count bases, largest count first
        more = f"(?:{y}*?{base})"
        pattern = f"(?:(?![{skin}])[{e}](?={more}{{{count - 1}}})|[{skin}](?={more}{{{count}}})){y}*"
        steps.append(_replace(pattern, "[EMOJI]" * count))
    steps.append(_replace(f"[{e}]{y}*", "[EMOJI]"))
    return steps


def _repeat(max_repeat: int) -> list:
    # rules.Repeat: delete each copy followed by max_repeat equal ones; max_repeat copies remain.
    # Then the same for whole emoji (rules.EMOJI_UNIT: ❤️, 👍🏻, flags, ZWJ sequences).
    e, mod, ri = esc_ranges(R._E), esc_ranges("\ufe0e\ufe0f" + R._SKIN), esc_ranges(R._RI)
    unit = f"(?:[{ri}]{{2}}|[{e}][{mod}]*(?:\\x{{200D}}[{e}][{mod}]*)*)"
    return [_replace(f"([^{_digit()}{_space()}★☆])(?=\\1{{{max_repeat}}})", ""),
            _replace(f"(?<!\\x{{200D}})({unit})(?=\\1{{{max_repeat}}})", "")]


TRANSLATIONS = {
    "nfc": _nfc, "invisible": _invisible, "fullwidth": _fullwidth, "compat_jamo": _compat_jamo,
    "whitespace": _whitespace, "email": _email, "url": _url, "phone": _phone, "mention": _mention,
    "censor": _censor, "emoji": _emoji, "repeat": _repeat,
}
