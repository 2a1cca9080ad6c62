"""The normalizer rules translated into ``tokenizers`` steps give the text the Python chain gives."""

from __future__ import annotations

import csv

import pytest

from kopretrain.text.normalizer import Normalizer, NormalizerConfig
from kopretrain.text.rules import build_rules
from kopretrain.text.tokenizer_rules import TRANSLATIONS, python_class, tokenizer_rules
from tests.test_normalize import random_texts

# One or more hard cases per rule, and the places where two rules meet.
HARD = [
    # nfc, invisible, fullwidth, compat jamo, whitespace
    "\u1112\u1161\u11ab\u1100\u116e\u11a8 영화", "재\u200b밌\ufeff어요\x07끝", "a\u200db 👨\u200d👩\u200d👧 ✌\ufe0f\u200d",
    "최고！ 굿굿＾＾ ＡＢＣ１２３", "\u110f\u110f 재밌어요 \u1172\u1172 \u119e", "배송   빨랐어요\r\n최고\u3000",
    "\x1c구분\x1f자\x85 \xa0끝 ", "  앞뒤 공백  ", "\t",
    # e-mail, url (scheme, www, bare domains, trailing punctuation given back)
    "자막 구해요 abc.def@hanmail.net", "abc@naver.com02-123-4567abc@naver.com", "메일: ａｂｃ＠ｎａｖｅｒ．ｃｏｍ 로", "x@y.co",
    "후기 http://blog.naver.com/abc/123참고!!", "www.nemofile.co.kr 가입", "HTTPS://A.B/c?d=1&e=2)...",
    "http://!! 뭐지", "www.!! 뭐지", "www. 뭐지", "http:// 끝", "naver.com!!", "a.com/!!", "a.com/x.y.",
    "Mr.Co 와 Trust.Me", "youtu.be/abc 와 goo.gl/xyz~~", "링크는<http://a.com>이고", "wWw.abc.xyz 링크",
    "sub.domain.community 는 아님", "a.com.kr/경로", "[URL] 이미 치환됨",
    "naver.me/5abcDEF 참고", "coupa.ng/abc와 t.co/x 그리고 me2.do/y", "“https://a.com” 참고", "링크 https://a.com…",
    "「http://a.com」 《www.a.com》。", "naver.com010-1234-5678", "naver.com[사진]", "love.me 는 아님",
    "(위키 https://en.wikipedia.org/wiki/Host_(film)) 참고", "http://a.com/x(a))(b)).", "a.com/(ab).", "www.a.com/(b)",
    "http://a.com/a(b)c) y", "http://a.com/(x", "http://a.com/x)(", "http://(a).", "www.(a)(b)c)",
    "https://youtu.be/abc👍 강추", "http://a.com★★★★★ 최고", "www.a.com王추천", "010 1234 5678t.co", "[PHONE]naver.com", "a.com/[EMAIL]", "a.com/abc[X] 와 a.com/ab.c[Y]", "a.com/x@y.kr",
    "ᄒ\u200bᅡᆫ국 영화", "ﾻﾻﾻﾻ 웃기네 ﾡﾢ", "ㅤ 빈칸 \uffa0끝", "ㅤ",
    # phone: mobile with/without separators, landlines, +82, amounts and years that stay
    "문자 주세요 010 1234 5678", "01012345678", "02-123-4567", "(031)123-4567", "031)123-4567",
    "+82 10-1234-5678", "+82-010-1234-5678", "100000원", "1592-1598 임진왜란", "1588-1234",
    "010-1234-56789", "٠١٠١٢٣٤٥٦٧٨ 아랍 숫자", "070-1234-5678 로 연락", "0504-1234-5678", "080-123-4567",
    "(02)123-4567 예약", "(02) 123-4567", "(010-1234-5678)", "0509-123-4567", "(070)1234-5678",
    "(010)1234-5678", "010 - 1234 - 5678 문자", "+82 (0)10-1234-5678", "2019 - 2020", "010 -- 1234 -- 5678",
    "01012345678(010)1234-5678", "0101234567801012345678(02)123-4567",
    # what repeat shortens already matches (normalizing twice changes nothing)
    "htttp://blog.me/abc 좋아요", "HTTTPS://a.b", "abc@@naver.com", "010--1234--5678", "010..1234..5678",
    # mention vs @-quotes and emoticons
    "@영화광 님 말이 맞아요", "@@name 안녕", "왜이러지?@@내용에", "@놈놈놈@보다 재밌다", "@_@ 헐",
    "~@@ 뭐야", "@아무나 만들 수 없는 작품@인것만은", "@a.b.c 님", "앞 @abc 뒤 x@ 닫힘", "@abc 와 @def",
    "@홍길동 님 말대로 @_@ 재미없음", "@abc 님 최고 ^^@", "@놈놈놈!@ 최고", "@abc ㅋ@",
    "@kim님말이맞아요", "@영화광님 말씀에", "@님프 최고", "@영화광123님\nㅋ", "@영화광", "@가",
    # what --max-repeat 1 turns into a link on a second pass (the chain runs to a fixed point)
    "good..com", "ㅋㅋ ww..kr", "x.com]]", "aa@@b..com", "0010..1234..5678",
    # censor masks vs words
    "OOO놈의 쓰레기 영화", "김OO 배우", "XX같은", "GOOOD ZOO FUXX XXL XXX", "○○○ 포○노", "시** **같은 개*끼",
    "나약한 *** 이야기", "^^** 최고 *****", "*** 최고 ***", "●● ◎◎ ×× ◯◯",
    # emoji, repeats, digits that must not change
    "최고예요😍😍😍👍🏻", "👍🏻👍🏻👍🏻", "🇰🇷🇺🇸 국기", "🏻🏻 피부색만", "♥♥♥♡♡", "★★★☆☆ 세 개", "1️⃣2️⃣",
    "배송 빨랐어욬ㅋㅋㅋㅋ", "와하하하하하", "!!!!!", "......", "ㅠㅠㅠㅠㅠㅠ", "GOOOOOD", "100000원!!!!! ㅋㅋㅋㅋ",
    "1111 2222", "٣٣٣٣", "ㅋㅋ", "ㅋ", "", " ", "[EMOJI]]]]", "😍]]]",
    # emoji of several code points: repeats, flags (paired from the left), keycaps, ZWJ sequences
    "좋아요❤️❤️❤️❤️❤️", "♥️♥️♥️ㅋㅋㅋ", "👍👍👍🏻", "👍🏻👍🏽👍🏻👍🏻", "🇰🇷🇰🇷🇰🇷🇰🇷 경기", "🇰🇷🇯🇵🇺🇸", "🇰🇷🇰",
    "🏳️\u200d🌈🌈🌈🌈", "👨\u200d👩\u200d👧👨\u200d👩\u200d👧👨\u200d👩\u200d👧", "1️⃣등 2⃣등 #️⃣ *⃣ a⃣",
]


def sample_reviews() -> list[str]:
    from tests.conftest import SAMPLE

    with open(SAMPLE, encoding="utf-8") as fh:
        return [row["review"] for row in csv.DictReader(fh)]


@pytest.mark.parametrize("emoji", ["keep", "map"])
@pytest.mark.parametrize("max_repeat", [1, 2, 3])
def test_tokenizer_steps_give_the_python_text(emoji, max_repeat):
    from tokenizers import normalizers

    config = {"emoji": emoji, "max_repeat": max_repeat}
    steps = normalizers.Sequence(tokenizer_rules(config).steps)
    norm = Normalizer(NormalizerConfig(**config))
    texts = HARD + random_texts(1500, seed=max_repeat) + sample_reviews()
    bad = [(t, norm.normalize(t), steps.normalize_str(t)) for t in texts if norm.normalize(t) != steps.normalize_str(t)]
    assert not bad, bad[:5]


def test_skipped_rules_are_not_applied():
    from tokenizers import normalizers

    config = {"skip_rules": ["censor", "phone", "repeat"]}
    rules = tokenizer_rules(config)
    assert "censor" not in rules.applied and "repeat" not in rules.applied and "url" in rules.applied
    steps = normalizers.Sequence(rules.steps)
    assert steps.normalize_str("OO 010-1234-5678 ㅋㅋㅋㅋ  http://a.com") == "OO 010-1234-5678 ㅋㅋㅋㅋ [URL]"


def test_kiwipiepy_rules_are_named_as_not_applied():
    rules = tokenizer_rules({"spacing": True, "typos": "basic"})
    assert set(rules.not_applied) == {"spacing", "typos"}
    assert "spacing" not in rules.applied and "cannot run inside a tokenizer" in rules.not_applied["spacing"]
    assert tokenizer_rules({"spacing": True, "skip_rules": ["spacing"]}).not_applied == {}


def test_every_regex_rule_has_a_translation():
    # A new rule in kopretrain.text.rules must be translated here (or declared not expressible).
    assert {name for name, _ in build_rules(2, "map")} == set(TRANSLATIONS)


def test_python_classes_match_python_re():
    import re

    space, digit = python_class("space"), python_class("digit")
    assert "\\x{1C}" in space and "\\x{3000}" in space  # \x1c-\x1f are \s to Python, not to Oniguruma
    assert "\\x{660}" in digit  # Arabic-Indic digits are \d to Python
    assert re.fullmatch(r"\s", "\x1c") and re.fullmatch(r"\d", "\u0660")
