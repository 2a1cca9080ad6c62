"""Each normalizer rule on its own, with the Korean cases it exists for."""

from __future__ import annotations

import re

import pytest

from kopretrain.text import rules
from kopretrain.text.normalizer import Normalizer
from kopretrain.text.rules import EmojiToken, Repeat


@pytest.mark.parametrize("text, expected", [
    ("배송 빨랐어욬ㅋㅋㅋㅋ", "배송 빨랐어욬ㅋㅋ"),
    ("ㅋㅋㅋㅋㅋ", "ㅋㅋ"),
    ("와하하하하하", "와하하"),
    ("!!!!!", "!!"),
    ("ㅠㅠㅠㅠㅠㅠ 슬퍼요", "ㅠㅠ 슬퍼요"),
    ("GOOOOOD", "GOOD"),
    ("최고의 영화......", "최고의 영화.."),
    ("ㅋㅋ", "ㅋㅋ"),  # at the limit: unchanged
])
def test_repeat_collapses_long_runs(text, expected):
    assert Repeat(2)(text) == expected


@pytest.mark.parametrize("text", ["100000원", "1000000000원 날림", "2000년대 영화 1111", "10점 만점에 10점"])
def test_repeat_never_touches_digits(text):
    # soynlp's repeat_normalize pattern turns 100000원 into 100원; ours leaves numbers alone.
    assert re.sub(r"(\w)\1{2,}", r"\1\1", "100000원") == "100원"
    assert Repeat(2)(text) == text


def test_repeat_digits_next_to_repeats_and_rating_stars():
    assert Repeat(2)("100000원!!!!! ㅋㅋㅋㅋ") == "100000원!! ㅋㅋ"
    assert Repeat(2)("★★★☆☆ 세 개") == "★★★☆☆ 세 개"


@pytest.mark.parametrize("text, expected", [
    ("좋아요❤️❤️❤️❤️❤️", "좋아요❤️❤️"),  # ❤️ is U+2764 U+FE0F: no run of one code point
    ("최고👍🏻👍🏻👍🏻👍🏻", "최고👍🏻👍🏻"),
    ("🇰🇷🇰🇷🇰🇷🇰🇷 경기", "🇰🇷🇰🇷 경기"),
    ("👨\u200d👩\u200d👧" * 3, "👨\u200d👩\u200d👧" * 2),
    ("🏳️\u200d🌈🌈🌈🌈", "🏳️\u200d🌈🌈"),  # the flag's rainbow does not start a run
    ("👍🏻👍🏽👍🏻👍🏻", "👍🏻👍🏽👍🏻👍🏻"),  # other tones: not one emoji repeated
    ("🇰🇷🇯🇵🇺🇸", "🇰🇷🇯🇵🇺🇸"),
])
def test_repeat_counts_an_emoji_with_its_modifiers_as_one_character(text, expected):
    assert Repeat(2)(text) == expected
    assert Repeat(2)(expected) == expected


def test_a_keycap_is_the_digit_it_shows():
    assert rules.fullwidth("1️⃣등 2⃣등 #️⃣ １⃣") == "1등 2등 # 1"
    assert rules.fullwidth("a⃣ ❤️") == "a⃣ ❤️"  # not a keycap; other emoji untouched
    assert Normalizer().normalize("문의 010-1234-567 8⃣") != "문의 [PHONE]"  # a space still splits the number
    assert Normalizer().normalize("문의 010-1234-5678⃣") == "문의 [PHONE]"


def test_repeat_max_is_configurable():
    assert Repeat(1)("ㅋㅋㅋㅋ 좋아요!!!") == "ㅋ 좋아요!"
    assert Repeat(3)("ㅋㅋㅋㅋㅋ") == "ㅋㅋㅋ"


def test_jamo_kept():
    # No rule removes lone jamo: ㅋㅋ, ㅠㅠ, ㅡㅡ carry sentiment.
    text = "ㅋㅋ 웃기다 ㅠㅠ 슬프다 ㅡㅡ 뭐냐 ㅎㅎ"
    for _, rule in rules.build_rules(2, "map"):
        assert rule(text) == text


def test_nfc_composes_decomposed_hangul():
    assert rules.nfc("\u1112\u1161\u11ab\u1100\u116e\u11a8 영화") == "한국 영화"


def test_compat_jamo_maps_lone_conjoining_jamo():
    assert rules.compat_jamo("\u110f\u110f 재밌어요 \u1172\u1172") == "ㅋㅋ 재밌어요 ㅠㅠ"
    assert rules.compat_jamo("ﾻﾻﾻﾻ 웃기네 ￗￗ") == "ㅋㅋㅋㅋ 웃기네 ㅠㅠ"  # half-width jamo


def test_a_mark_between_decomposed_jamo_does_not_block_composition():
    chain = dict(rules.build_rules())
    names = [name for name, _ in rules.build_rules()]
    assert names.index("invisible") < names.index("nfc")
    text = "\u1112\u200b\u1161\u11ab\u1100\u116e\u11a8 영화"
    for name in names[: names.index("compat_jamo") + 1]:
        text = chain[name](text)
    assert text == "한국 영화"


def test_invisible_and_whitespace():
    assert rules.invisible("재\u200b밌\ufeff어요\x07끝") == "재밌어요 끝"
    assert rules.whitespace("배송   빨라요\r\n최고\u3000\u00a0좋아 ") == "배송 빨라요 최고 좋아"
    family = "👨\u200d👩\u200d👧"
    assert rules.invisible(family) == family  # ZWJ inside an emoji sequence stays
    assert rules.invisible("재\u200d밌어요") == "재밌어요"
    # Hangul fillers typed as blanks are spaces, so a filler-only review is empty
    assert rules.whitespace(rules.invisible("ㅤ 빈칸\uffa0끝 ㅤ")) == "빈칸 끝"


def test_fullwidth():
    assert rules.fullwidth("최고！ 굿굿＾＾ ＡＢＣ１２３") == "최고! 굿굿^^ ABC123"


@pytest.mark.parametrize("text, expected", [
    ("후기 http://blog.naver.com/abc/123참고!!", "후기 [URL]참고!!"),
    ("www.nemofile.co.kr 가입", "[URL] 가입"),
    ("링크: https://example.com/a?b=1&c=2.", "링크: [URL]."),
    ("여기 naver.com 에서 봄", "여기 [URL] 에서 봄"),
    ("Mr.Co 연기 최고. 정말.", "Mr.Co 연기 최고. 정말."),
    ("wWw.abc.xyz 링크", "[URL] 링크"),  # mixed case: the quick substring test must not skip it
    # link shorteners pasted into Korean reviews; CJK quotes and marks end a link
    ("naver.me/5abcDEF 참고", "[URL] 참고"),
    ("youtu.be/abc 보세요 coupa.ng/x", "[URL] 보세요 [URL]"),
    ("“https://a.com” 참고", "“[URL]” 참고"),
    ("「http://a.com」 링크 https://b.com…", "「[URL]」 링크 [URL]…"),
    # a ")" closing a "(" of the link is part of it; the sentence's own ")" is given back
    ("(위키 https://en.wikipedia.org/wiki/The_Host_(2006_film)) 참고", "(위키 [URL]) 참고"),
    ("en.wikipedia.org/wiki/Foo_(bar).", "[URL]."), ("(see http://a.com/x(y)z)!", "(see [URL])!"),
    ("trust.me 는 아님", "trust.me 는 아님"),
    # emoji, rating stars and Han characters glued to a link are the review's (they were deleted)
    ("https://youtu.be/abc👍 강추", "[URL]👍 강추"), ("http://a.com★★★★★ 최고", "[URL]★★★★★ 최고"),
    ("www.a.com王추천", "[URL]王추천"),
    # after a placeholder: no link (a second pass would find "[PHONE]t.co" where the first saw "5678t.co")
    ("[PHONE]t.co", "[PHONE]t.co"),
])
def test_url(text, expected):
    assert rules.url(text) == expected


def test_email_before_url():
    assert rules.email("자막 구해요 abc.def@hanmail.net") == "자막 구해요 [EMAIL]"
    assert rules.email("골뱅이@ 하나") == "골뱅이@ 하나"
    # an address glued to another's end is masked the first time, not on a second normalize
    assert rules.email("abc@naver.com02-123-4567abc@naver.com") == "[EMAIL][EMAIL]"


@pytest.mark.parametrize("text, expected", [
    ("문자 주세요 010 1234 5678", "문자 주세요 [PHONE]"),
    ("010-1234-5678로 연락", "[PHONE]로 연락"),
    ("01012345678", "[PHONE]"),
    ("+82 10-1234-5678", "[PHONE]"),
    ("02-123-4567 예약", "[PHONE] 예약"),
    ("100000원", "100000원"),
    ("1592-1598 임진왜란", "1592-1598 임진왜란"),  # 4-4 numbers are year ranges too
    ("20100904 00515", "20100904 00515"),
    ("070-1234-5678 로 연락", "[PHONE] 로 연락"),  # internet phones
    # bracketed mobile codes, spaced hyphens, +82 with its trunk 0 in brackets (left in the text before)
    ("(010)1234-5678", "[PHONE]"), ("010 - 1234 - 5678 문자", "[PHONE] 문자"), ("+82 (0)10-1234-5678", "[PHONE]"),
    ("2019 - 2020 시즌", "2019 - 2020 시즌"),
    ("01012345678(010)1234-5678", "[PHONE][PHONE]"),  # glued: one pass left the second for the next
    ("안심번호 0504-1234-5678", "안심번호 [PHONE]"),  # delivery apps' safe numbers
    ("080-123-4567", "[PHONE]"),
    ("(02)123-4567 예약", "[PHONE] 예약"),  # the bracket goes with the number
    ("(010-1234-5678)", "([PHONE])"),
])
def test_phone(text, expected):
    assert rules.phone(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("@영화광 님 말이 맞아요", "[USER] 님 말이 맞아요"),
    ("@jiwoo_0312 같이 가자", "[USER] 같이 가자"),
    ("강추!@ㅋ", "강추!@ㅋ"),
    ("@_@ 놀람", "@_@ 놀람"),
    ("진짜 감동~@@", "진짜 감동~@@"),
    ("@@영화광", "[USER]"),
    ("좋네요 @kim_99 ㅋㅋ", "좋네요 [USER] ㅋㅋ"),
    ("@오떼블랑(bear****) 너 같은 스포일러", "[USER](bear****) 너 같은 스포일러"),
    # @-quotes and glued @s keep their words
    ("근데 평점이 왜이러지?@@내용에 관점이", "근데 평점이 왜이러지?@@내용에 관점이"),
    ("@놈놈놈@보다 더 재밌는건", "@놈놈놈@보다 더 재밌는건"),
    ("@아무나 만들 수 없는 작품@인것만은 분명하다", "@아무나 만들 수 없는 작품@인것만은 분명하다"),
    ("#월@일부터", "#월@일부터"),
    # an emoticon's @ later on does not turn a mention into a quote
    ("@홍길동 님 말대로 @_@ 재미없음", "[USER] 님 말대로 @_@ 재미없음"),
    ("@abc 님 최고 ^^@", "[USER] 님 최고 ^^@"),
    # the handle ends where the review goes on (it took the whole word: a review of one word was lost)
    ("@kim님말이맞아요", "[USER]님말이맞아요"), ("@영화광님 말씀에 동의", "[USER]님 말씀에 동의"),
    ("@님프 최고", "[USER] 최고"), ("@영화광123님 ㅋ", "[USER]님 ㅋ"),
])
def test_mention(text, expected):
    assert rules.mention(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("OOO놈의 쓰레기 영화", "[CENSORED]놈의 쓰레기 영화"),
    ("김OO 감독", "김[CENSORED] 감독"),
    ("XX같은 영화", "[CENSORED]같은 영화"),
    ("○○○○를 했지만", "[CENSORED]를 했지만"),
    ("대사 반이 ***임", "대사 반이 [CENSORED]임"),
    ("개*끼", "개[CENSORED]끼"),
    ("나약한 *** 이야기", "나약한 [CENSORED] 이야기"),
    # Not masks: Latin words, single symbols, decoration at the ends, arithmetic.
    ("GOOOOD 영화", "GOOOOD 영화"),
    ("ZOO 보러 감", "ZOO 보러 감"),
    ("what the FUXX", "what the FUXX"),
    ("XXL 사이즈", "XXL 사이즈"),
    ("포○노", "포○노"),
    ("*** 최고 ***", "*** 최고 ***"),
    ("넘 재미있어여^^**", "넘 재미있어여^^**"),
    ("3*4=12", "3*4=12"),
])
def test_censor(text, expected):
    assert rules.censor(text) == expected


def test_emoji_map_counts_and_caps_runs():
    rule = EmojiToken(max_repeat=2)
    assert rule("최고예요😍") == "최고예요[EMOJI]"
    assert rule("최고예요😍😍😍👍🏻") == "최고예요[EMOJI][EMOJI]"
    assert rule("👍🏻 좋아요") == "[EMOJI] 좋아요"  # skin tone belongs to its emoji
    assert rule("👨\u200d👩\u200d👧 가족") == "[EMOJI] 가족"
    assert rule("사랑해요♥") == "사랑해요[EMOJI]"
    assert rule("★★★☆☆") == "★★★☆☆"  # written ratings are not emoji
    assert rule("🇰🇷🇯🇵 경기") == "[EMOJI][EMOJI] 경기"  # one per flag, not one per run of flags
    assert rule("🇰🇷 경기") == "[EMOJI] 경기"


def test_emoji_rule_only_when_mapping():
    assert "emoji" not in [n for n, _ in rules.build_rules(2, "keep")]
    assert [n for n, _ in rules.build_rules(2, "map")][-2:] == ["emoji", "repeat"]


def test_every_rule_documents_a_korean_example():
    for name, rule in rules.build_rules(2, "map"):
        doc = rule.__doc__ or type(rule).__doc__
        assert doc and "->" in doc and re.search("[가-힣ㄱ-ㅣ]", doc), name
