"""Normalizer rules: small, named, precompiled rewrites of noisy Korean user text.

Each rule is a callable ``rule(text) -> text`` whose ``name`` is the key of its count in
``stage.json`` and whose docstring shows one Korean input and its output. They are plain regex /
``str.translate`` so the whole default chain costs ~10 µs on a 35-character review. The two
kiwipiepy rules (:class:`Spacing`, :class:`Typos`) are optional, work on batches, and live in
``kopretrain.text.kiwi``.

Rules are written so that running the chain twice changes nothing (``Normalizer`` promises
idempotence): a rule's decision depends only on neighbours that later rules do not change, and no
rule emits text that an earlier rule would rewrite.
"""

from __future__ import annotations

import re
import unicodedata

# Placeholders that stand in for personal or noisy spans. The vocab stage adds them as single
# tokens; analyze registers them with kiwipiepy so they stay one morpheme each.
PLACEHOLDER_TOKENS = ["[URL]", "[EMAIL]", "[PHONE]", "[USER]", "[CENSORED]", "[EMOJI]"]
PLACEHOLDER_RE = re.compile("|".join(re.escape(t) for t in PLACEHOLDER_TOKENS))

# Emoji as code points: the pictograph blocks plus misc symbols/dingbats, without ★☆ (U+2605-6)
# because "★★★☆☆" is a written rating, not decoration. ♡/♥ count as emoji.
_E = "\U0001F000-\U0001FAFF\u2600-\u2604\u2607-\u27BF\u2B50\u2B55\u231A\u231B\u23E9-\u23FA"
_SKIN = "\U0001F3FB-\U0001F3FF"
EMOJI_RE = re.compile(f"[{_E}]")
_RI = "\U0001F1E6-\U0001F1FF"  # regional indicators: two make a flag
# One emoji as a reader sees it: a flag, or a pictograph with its variation selector and skin tone,
# ZWJ-joined to the next (❤️, 👍🏻, 👨‍👩‍👧). Repeat collapses runs of these like runs of ㅋ.
EMOJI_UNIT = f"(?:[{_RI}]{{2}}|[{_E}][\ufe0e\ufe0f{_SKIN}]*(?:\u200d[{_E}][\ufe0e\ufe0f{_SKIN}]*)*)"


def nfc(text: str) -> str:
    """Compose to Unicode NFC (decomposed Hangul from macOS or copy-paste).

    ``"\u1112\u1161\u11ab\u1100\u116e\u11a8 영화"`` (conjoining jamo) -> ``"한국 영화"``.
    NFC, not NFKC: NFKC turns the compatibility jamo of ``ㅋㅋ`` (U+314B) into conjoining
    ``ᄏᄏ`` (U+110F), which would split one laugh into two kinds of characters.
    """
    return unicodedata.normalize("NFC", text)


# Controls, and the Hangul fillers (U+3164, half-width U+FFA0) people type as a blank that
# str.isspace() does not count as one, become spaces.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u3164\uffa0]")
# Zero-width and bidi format characters. ZWJ (U+200D) is kept after an emoji, where it joins a
# sequence such as 👨‍👩‍👧; elsewhere it only hides a split inside a word.
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
    f"|(?<![{_E}\ufe0f])\u200d"
)
# One plain character class first: almost no review has any of these, and a class scan is ~10x
# cheaper than the lookbehind alternation above (the chain's budget is ~10-30 µs per text).
_INVISIBLE_HINT = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\u3164\uffa0]"
)


def invisible(text: str) -> str:
    """Control characters and Hangul fillers become spaces; zero-width and bidi marks are removed.
    Runs before :func:`nfc`, so a mark hidden between decomposed jamo cannot keep them apart.

    ``"재\u200b밌\u200b어요\x07"`` -> ``"재밌어요 "`` (the space goes at the whitespace rule).
    """
    if not _INVISIBLE_HINT.search(text):
        return text
    return _INVISIBLE.sub("", _CONTROL.sub(" ", text))


_FULLWIDTH_RE = re.compile("[\uff01-\uff5e]")
_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}


# A keycap emoji is the digit (or # *) it shows; it goes before phone and censor run, so "8⃣" in
# a phone number or "*⃣" beside asterisks is seen as what it is the first time.
_KEYCAP = re.compile("(?<=[0-9#*])[\ufe0f\u20e3]*\u20e3")


def fullwidth(text: str) -> str:
    """Full-width ASCII (typed with a Korean IME) becomes ASCII, and a keycap its digit.

    ``"최고！ 굿굿＾＾"`` -> ``"최고! 굿굿^^"``; ``"1️⃣등"`` -> ``"1등"``.
    """
    text = text.translate(_FULLWIDTH) if _FULLWIDTH_RE.search(text) else text
    return _KEYCAP.sub("", text) if "\u20e3" in text else text


# Lone conjoining jamo (left after NFC, e.g. from NFKC-processed text) -> compatibility jamo, the
# form people type. Tables are explicit because the two blocks are ordered differently.
_CHO = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"  # U+1100..U+1112
_JUNG = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"  # U+1161..U+1175
_JONG = "ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ"  # U+11A8..U+11C2
_JAMO = {
    **{0x1100 + i: c for i, c in enumerate(_CHO)},
    **{0x1161 + i: c for i, c in enumerate(_JUNG)},
    **{0x11A8 + i: c for i, c in enumerate(_JONG)},
    0x119E: "ㆍ",  # arae-a, typed as a dot on the cheonjiin keypad
    # half-width jamo (old Korean encodings, some mobile keyboards): "ﾻﾻ" is "ㅋㅋ"
    **{c: chr(int(unicodedata.decomposition(chr(c)).split()[1], 16))
       for c in range(0xFFA1, 0xFFDD) if unicodedata.decomposition(chr(c)).startswith("<narrow>")},
}
_CONJOINING = re.compile("[\u1100-\u1112\u1161-\u1175\u119e\u11a8-\u11c2\uffa1-\uffdc]")


def compat_jamo(text: str) -> str:
    """Lone conjoining and half-width jamo become the compatibility jamo people type.

    ``"\u110f\u110f 재밌어요"`` (U+110F) -> ``"ㅋㅋ 재밌어요"`` (U+314B); ``"ﾻﾻ"`` -> ``"ㅋㅋ"``.
    """
    return text.translate(_JAMO) if _CONJOINING.search(text) else text


def whitespace(text: str) -> str:
    """Any run of whitespace (newlines, tabs, U+3000, NBSP) becomes one space; ends are stripped.

    ``"배송   빨라요\\r\\n최고\u3000"`` -> ``"배송 빨라요 최고"``.
    """
    return " ".join(text.split())


# "@+", "-+" and "[Hh]+[Tt]+[Pp]+" below: what repeat (last in the chain) shortens must already
# match here, or a second normalization would mask what the first left ("htttp://" -> "http://").
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@+[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def email(text: str) -> str:
    """E-mail addresses become ``[EMAIL]`` (runs before :func:`url`, which would take the domain).

    ``"자막 구해요 abc.def@hanmail.net"`` -> ``"자막 구해요 [EMAIL]"``.
    """
    if "@" not in text:
        return text
    # Twice: an address glued to the end of another ("a@b.com02-123x@c.com") cannot start inside
    # the first one's letters; once "[EMAIL]" stands before it, it can (a second normalize would).
    return _EMAIL.sub("[EMAIL]", _EMAIL.sub("[EMAIL]", text))


# A URL ends at whitespace, Hangul, Han characters, emoji, rating stars, quotes or brackets,
# ASCII or CJK (Korean text is glued to links: "http://a.com참고", "“http://a.com”",
# "youtu.be/abc👍", "a.com★★★★★"); trailing sentence punctuation is given back.
URL_STOP = f"가-힣ㄱ-ㆎ一-鿿{_E}★☆" + "<>\"'\\[\\]{}|\\\\^`“”‘’«»「」『』【】〈〉《》。、…"
_URL_CHARS = rf"[^\s{URL_STOP}]"
# Bare domains need a lowercase common TLD ("Mr.Co" or "Trust.Me" are not links), or are one of
# the link shorteners Korean reviews paste. Not followed by "[" nor after "]": a placeholder a
# later rule writes ("naver.com010-1234-5678" -> "naver.com[PHONE]", "010 1234 5678t.co" ->
# "[PHONE]t.co") must not make a link on a second pass.
BARE_DOMAIN = (r"(?<![A-Za-z0-9@._\]-])(?:(?:[A-Za-z0-9-]+\.)+(?:com|net|org|kr|io|ly|gl|tv)"
               r"|naver\.me|youtu\.be|coupa\.ng|t\.co|me2\.do|vo\.la)")
URL_SCHEME = "[Hh]+[Tt]+[Pp]+[Ss]*://"
_URL = re.compile(
    rf"(?:{URL_SCHEME}|[Ww]{{3}}\.){_URL_CHARS}+"
    # A path ends where URL characters end, "[" included ("a.com/[EMAIL]" -> "[URL][EMAIL]", as the
    # tokenizer copy does); only a domain without one must not run into a placeholder.
    rf"|{BARE_DOMAIN}(?:/{_URL_CHARS}*|(?![A-Za-z0-9_\[-]))"
)
_URL_TAIL = re.compile(r"[.,!?;:)~]+$")
# A ")" that closes a "(" inside the link belongs to it ("wiki/Foo_(bar)"); after the last "(",
# the first ")" is the one that can close it.
_URL_CLOSED = re.compile(r"(.*\([^()]*\))[.,!?;:)~]*$")


def _url_sub(match: re.Match) -> str:
    closed = _URL_CLOSED.match(match.group())
    if closed:
        return "[URL]" + match.group()[closed.end(1):]
    tail = _URL_TAIL.search(match.group())
    return "[URL]" + (tail.group() if tail else "")


def url(text: str) -> str:
    """Links (with scheme, ``www.`` or a common bare domain) become ``[URL]``.

    ``"후기 http://blog.naver.com/abc/123참고!!"`` -> ``"후기 [URL]참고!!"``;
    ``"www.nemofile.co.kr 가입"`` -> ``"[URL] 가입"``; ``"naver.me/xAbC 참고"`` -> ``"[URL] 참고"``;
    ``"(위키 https://en.wikipedia.org/wiki/The_Host_(2006_film))"`` -> ``"(위키 [URL])"``.
    Hangul ends a link even inside its path: it is far more often the review glued to the link.
    """
    # Unrolled substring tests: a generator over the TLDs cost more than all other rules together.
    # All four two-letter cases of "ww": "wWw." is a link to the regex too (and to the tokenizer's copy).
    if "://" in text or "ww" in text or "WW" in text or "wW" in text or "Ww" in text or ("." in text and (
            ".co" in text or ".net" in text or ".org" in text or ".kr" in text or ".io" in text
            or ".ly" in text or ".gl" in text or ".tv" in text or ".me" in text or ".be" in text
            or ".ng" in text or ".do" in text or ".la" in text)):
        return _URL.sub(_url_sub, text)
    return text


# Korean mobile numbers with or without separators; landlines, 070 (internet), 080 (toll-free)
# and 0502-0508 (the "safe numbers" delivery apps show) only with separators (a bare 9-10 digit
# number is more often an amount). 4-4 numbers such as 1588-1234 are NOT masked: they collide
# with year ranges ("1592-1598 임진왜란").
PHONE_AREA = r"(?:2|[3-6][1-5]|70|80|50[2-8])"
SEP = r"(?: ?-+ ?|\.+| )"  # one separator, however often repeated ("010 - 1234 - 5678" too)


def phone_pattern(digits: str = r"\d") -> str:
    """The phone regex, ``digits`` the content of a digit class (the tokenizer's copy spells out
    what Python's \\d matches). The +82 prefix may keep its trunk 0 ("+82 010", "+82 (0)10"); an
    area or mobile code may stand in brackets ("(02)123-4567", "(010)1234-5678")."""
    d, intl = f"[{digits}]", rf"(?:\+82{SEP}?(?:\(0\) ?|0)?|0)"
    return (rf"(?<![{digits}-])(?:"
            rf"{intl}1[016789]{SEP}?{d}{{3,4}}{SEP}?{d}{{4}}"
            rf"|{intl}{PHONE_AREA}(?:{SEP}|\)){d}{{3,4}}{SEP}{d}{{4}}"
            rf"|\(0(?:{PHONE_AREA}|1[016789])\) ?{d}{{3,4}}{SEP}{d}{{4}}"
            rf")(?![{digits}-])")


_PHONE = re.compile(phone_pattern())
PHONE_PASSES = 3  # the tokenizer's copy repeats its step as often: four numbers glued together stay one short


def phone(text: str) -> str:
    """Korean phone numbers become ``[PHONE]``; amounts and years stay.

    ``"문자 주세요 010 1234 5678"`` -> ``"문자 주세요 [PHONE]"``; ``"(02)123-4567"`` -> ``"[PHONE]"``;
    ``"100000원"`` stays.
    """
    if "0" not in text and "+" not in text:
        return text
    # Until nothing changes: a number glued after another is not one while the first is digits
    # ("01012345678(010)1234-5678"), and is after it became [PHONE] (a second pass would mask it).
    for _ in range(PHONE_PASSES):
        out = _PHONE.sub("[PHONE]", text)
        if out == text:
            break
        text = out
    return text


# A mention starts a word: at the start of the text or after whitespace ("왜이러지?@@내용에" is not one).
# "@@name" counts too: repeat later shortens it to "@name", and normalizing twice must not change it.
# A Latin handle ends where Hangul starts ("@kim님말이맞아요"), a Hangul one before the honorific
# 님 ("@영화광님 말씀에"): swallowing the rest of the word deleted it (the whole review when
# nothing else was left, as placeholder_only).
MENTION_HANDLE = (r"@+(?:[A-Za-z0-9][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*"
                  r"|[가-힣][A-Za-z0-9가-힣_]*?(?=님|[^A-Za-z0-9가-힣_]|\Z))")
_MENTION = re.compile(rf"(?:(?<=\s)|^){MENTION_HANDLE}")
# Korean reviews quote titles and phrases with @: "@놈놈놈@보다", "@아무나 만들 수 없는 작품@인것만은".
# An @ glued to the end of a word (or its sentence mark) closes such a quote; the @ of an
# emoticon later on ("@_@", "^^@") does not. "]" too: censor may turn "OO@" into "[CENSORED]@",
# and normalizing again must still see the quote.
CLOSING_BEFORE = r"A-Za-z0-9가-힣ㄱ-ㆎ.!?\]"
_CLOSING_AT = re.compile(f"[{CLOSING_BEFORE}]@")


def mention(text: str) -> str:
    """``@handle`` mentions (Latin or Hangul) at the start of a word become ``[USER]``; ``@_@``,
    ``~@@`` and @-quotes (``@놈놈놈@보다``: the @ that closes them is glued to a word) stay.

    ``"@영화광 님 말이 맞아요"`` -> ``"[USER] 님 말이 맞아요"``. On NSMC, 70 of the 72 reviews the
    earlier rule (any ``@word``) rewrote were quotes or emoticons, and it deleted the quoted words.
    """
    if "@" not in text:
        return text

    def sub(m: re.Match) -> str:
        return m.group(0) if _CLOSING_AT.search(text, m.start() + 1) else "[USER]"

    return _MENTION.sub(sub, text)


# Portal profanity masks. Choices (each tested):
# - O/X runs (OOO, XX) only when not touching a Latin letter or digit: "OOO놈", "김OO", "XX같은"
#   are masks, "GOOOD", "ZOO", "FUXX", "XXL" are words. The film title "XXX" is masked too (rare).
# - ○◯●◎× runs of two or more are masks; a single ○ inside a word ("포○노") is left alone.
# - '*' only when glued to a Hangul syllable or Latin letter ("시**", "**같은", "개*끼") or a
#   short run standing alone mid-sentence ("나약한 *** 이야기"). Decoration stays: "^^**",
#   "최고 *****" at the end, "*** 최고 ***" at the ends. The decision depends only on the
#   neighbours, never on the run length, so collapsing "*****" to "**" later cannot create a mask.
_W = "가-힣A-Za-z"
_CENSOR = re.compile(
    r"(?<![A-Za-z0-9])(?:O{2,}|X{2,})(?![A-Za-z0-9])"
    r"|[○◯●◎×]{2,}"
    rf"|(?<=[{_W}])\*+(?=[{_W}])|(?<=[{_W}])\*{{2,}}|\*{{2,}}(?=[{_W}])"
    r"|(?<=\S )\*{2,}(?= \S)"
)
_CENSOR_HINT = re.compile(r"[OX○◯●◎×*]")


def censor(text: str) -> str:
    """Profanity masks (OOO, XX, ○○, ``*``-runs in words) become ``[CENSORED]``.

    ``"OOO놈의 쓰레기 영화"`` -> ``"[CENSORED]놈의 쓰레기 영화"``; ``"GOOOD"`` stays.
    """
    return _CENSOR.sub("[CENSORED]", text) if _CENSOR_HINT.search(text) else text


class Repeat:
    """Collapse one character repeated more than ``max_repeat`` times. Digits never collapse
    (soynlp's ``(\\w)\\1{2,}`` turns ``100000원`` into ``100원``), nor rating stars (``★★★☆☆``
    is a number too); spaces are the whitespace rule's.

    ``"배송 빨랐어욬ㅋㅋㅋㅋ"`` -> ``"배송 빨랐어욬ㅋㅋ"``; ``"와하하하하하"`` -> ``"와하하"``;
    ``"100000원!!!!!"`` -> ``"100000원!!"``. An emoji with its modifiers is one character here:
    ``"좋아요❤️❤️❤️❤️"`` -> ``"좋아요❤️❤️"`` (❤️ is two code points, so the character rule never sees a run).
    """

    name = "repeat"

    def __init__(self, max_repeat: int = 2):
        self._re = re.compile(r"([^\d\s★☆])\1{%d,}" % max_repeat)
        # not after a ZWJ: the run then starts inside a sequence (🏳️‍🌈🌈🌈 keeps its flag whole)
        self._unit = re.compile(f"(?<!\u200d)({EMOJI_UNIT})\\1{{{max_repeat},}}")
        self.max_repeat = max_repeat
        # Most reviews repeat nothing: a plain "(.)\1\1" search is ~5x cheaper than the sub.
        self._hint = re.compile("(.)" + r"\1" * max_repeat, re.DOTALL)
        self._unit_hint = re.compile(f"[\ufe0e\ufe0f{_SKIN}\u200d{_RI}]")

    def __call__(self, text: str) -> str:
        # A callable, not a "\g<1>\g<1>" template: templates are expanded in Python per match.
        if self._hint.search(text):
            text = self._re.sub(lambda m: m.group(1) * self.max_repeat, text)
        if self._unit_hint.search(text):
            text = self._unit.sub(lambda m: m.group(1) * self.max_repeat, text)
        return text


class EmojiToken:
    """Each emoji becomes ``[EMOJI]``; a run of adjacent emoji gives at most ``max_repeat``.

    ``"최고예요😍😍😍👍🏻"`` -> ``"최고예요[EMOJI][EMOJI]"``. Skin tones, ZWJ sequences and
    variation selectors belong to their emoji (👨‍👩‍👧 is one); each flag counts once
    (🇰🇷🇯🇵 is two). Keycaps are digits by now (``fullwidth``).
    """

    name = "emoji"
    # A flag (two regional indicators, paired from the left) becomes one stand-in pictograph (🏳),
    # so counting bases below sees one emoji per flag.
    _FLAG = re.compile(f"[{_RI}]{{2}}")
    _RUN = re.compile(f"[{_E}][{_E}\ufe0e\ufe0f\u200d\u20e3]*")
    # Count what a reader sees: not skin tones, not parts after a ZWJ, one per flag (two RIs).
    _BASE = re.compile(f"(?<![\u200d\U0001F1E6-\U0001F1FF])(?![{_SKIN}])[{_E}]")

    def __init__(self, max_repeat: int = 2):
        self.max_repeat = max_repeat

    def _sub(self, match: re.Match) -> str:
        n = max(1, len(self._BASE.findall(match.group())))
        return "[EMOJI]" * min(n, self.max_repeat)

    def __call__(self, text: str) -> str:
        text = self._FLAG.sub("\U0001F3F3", text)
        return self._RUN.sub(self._sub, text)


def build_rules(max_repeat: int = 2, emoji: str = "keep") -> list[tuple[str, object]]:
    """The regex rules in the order they run: ``[(name, rule), ...]``."""
    rules: list[tuple[str, object]] = [
        ("invisible", invisible), ("nfc", nfc), ("fullwidth", fullwidth), ("compat_jamo", compat_jamo),
        ("whitespace", whitespace), ("email", email), ("url", url), ("phone", phone),
        ("mention", mention), ("censor", censor),
    ]
    if emoji == "map":
        rules.append(("emoji", EmojiToken(max_repeat)))
    # repeat goes last: a rule after it could glue equal characters into a new run
    # ("👍]" -> "[EMOJI]]").
    rules.append(("repeat", Repeat(max_repeat)))
    return rules


RULE_NAMES = [name for name, _ in build_rules(emoji="map")] + ["spacing", "typos"]
