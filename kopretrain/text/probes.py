"""What the normalize rules do, as a digest: the rule version that keys normalize outputs and models.

The rules change between kopretrain versions (a URL rule that learned about parentheses, a mention
rule that learned about closing brackets). An output normalized by the old rules must then not stay
"up to date", and a model trained on text the old rules made should say so when today's rules
prepare its inputs. A hand-kept version number is forgotten; a digest of the rules' *behaviour* is
not: :func:`rules_digest` runs the normalizer of a config over :data:`PROBE_TEXTS` (written here
to hit each rule and its edge cases) and hashes what comes out, with the filter's verdicts. Editing
a comment changes nothing; changing what a rule does to any probe changes the digest.
``tests/text/test_probes.py`` checks that every rule changes at least one probe.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

PROBE_TEXTS: tuple[str, ...] = (
    # repeat: Hangul, jamo, punctuation; digits and stars never collapse
    "배송 빨랐어욬ㅋㅋㅋㅋㅋ 100000원!!!!!", "와하하하하하 ㅠㅠㅠㅠ 진짜;;;;;", "별점 ★★★★☆ 1111번 봤음~~~~",
    "좋아요❤️❤️❤️❤️ 👍🏻👍🏻👍🏻 🏳️‍🌈🌈🌈🌈", "ㅡㅡㅡㅡ 뭐임....... ?????",
    # emoji (kept, or mapped to [EMOJI]): ZWJ families, flags, skin tones, keycaps
    "최고예요😍😍😍👍🏻", "가족이랑 봤어요 👨‍👩‍👧 🇰🇷🇯🇵 감동", "평점 5️⃣점 드립니다 ☀️☔",
    # nfc, compat_jamo, invisible, fullwidth, whitespace
    "\u1112\u1161\u11ab\u1100\u1173\u11af 영화", "ㅎ\u1161ㅎ\u1161 \u1100 \u11a8", "재\u200b밌\u200d다\ufeff 진짜\u00ad",
    "\u3164\uffa0 빈칸 \x07종소리", "ＡＢＣ　１２３！ 풀폭 ～", "줄\n바꿈\t탭    여러   칸\r\n끝  ",
    # email
    "문의 abc.def+x@naver.com 로 주세요", "메일 test@@gmail.com 또는 a_b@daum.net.", "user@localhost 는 주소 아님",
    # url, with parentheses, trailing punctuation, bare domains, glued Hangul
    "자세한 건 https://ko.wikipedia.org/wiki/Foo_(bar) 참고.", "(링크: http://blog.naver.com/abc?x=1&y=2)",
    "htttp://example.com/a~ 여기봐요!!", "www.youtube.com/watch?v=abc123영상 좋아요", "naver.com 에서 검색, bit.ly/3xYz.",
    "<https://a.kr/b> “https://c.io/d” 「http://e.net」",
    # phone: separators, area codes, international
    "연락 010-1234-5678 또는 02.555.1234", "문자는 010 1234 5678 로, 팩스 031--123--4567", "+82 10-9876-5432 번호",
    "naver.com010-1234-5678", "2019-12-25 개봉 1234-5678 아님?", "(010)1234-5678 / 010 - 1234 - 5678",
    # mention
    "@영화광 님 말이 맞아요", "(@user_1) 동의합니다", "댓글@abc 아님 끝.@xyz", "@@두개 @a.b.c 이메일같은멘션",
    "@kim님말이맞아요", "@영화광님 말씀에 동의", "https://youtu.be/abc👍 강추 www.a.com王추천", "010 1234 5678t.co",
    # censor
    "OOO놈의 쓰레기 영화 XX같은", "GOOOD ZOO FUXX XXL 영화 XXX", "포○노 ○○○ 시**, **같은 개*끼",
    "나약한 *** 이야기 최고 *****", "^^** 별로 *** 최고 ***",
    # the filter: empty, too short/long, placeholder only, too little Hangul, English-keyboard Korean
    "", "   ", "ㅋ", "https://spam.example.com/abc", "[URL] [EMAIL]", "dl dudghk wjdakf tmfvmek rmfjsk",
    "This movie was absolutely wonderful and I loved every minute of it", "good!!", "👍", "좋은 영화다 " * 900,
    # plain reviews (most texts): nothing should change
    "연기는 좋았는데 스토리가 너무 뻔했다", "잼있어요 강추합니다 유지태 연기 굿", "평점 9.5점... 다시 볼 의향 있음",
)


# Our side of the kiwipiepy rules (text/kiwi.py: which words typos rewrites, the regex rules run
# again after spacing), which the probes do not run: bump it when that code changes what it writes.
KIWI_RULES_REVISION = 2


def rules_digest(normalize: Any) -> str:
    """16 hex characters that change when what ``normalize`` (a NormalizerConfig, or the fields a
    ``kopretrain.json`` records) does to the probe texts changes. The kiwipiepy rules (spacing,
    typos) are represented by kiwipiepy's version instead of being run (loading Kiwi takes seconds)."""
    from dataclasses import asdict, fields, is_dataclass

    from kopretrain.text.normalizer import NormalizerConfig

    given = asdict(normalize) if is_dataclass(normalize) else dict(normalize)
    names = {f.name for f in fields(NormalizerConfig)} - {"num_workers"}
    return _digest(json.dumps({k: v for k, v in given.items() if k in names}, sort_keys=True))


@lru_cache(maxsize=32)
def _digest(rules_json: str) -> str:
    from kopretrain.text.normalizer import Normalizer, NormalizerConfig

    rules = json.loads(rules_json)
    kiwi = rules.get("spacing") or rules.get("typos", "none") != "none"
    norm = Normalizer(NormalizerConfig(**{**rules, "spacing": False, "typos": "none"}))
    h = hashlib.sha256()
    for text in PROBE_TEXTS:
        out = norm.normalize(text)
        h.update(f"{out}\0{norm.check(out)}\0".encode())
    if kiwi:
        from importlib import metadata

        h.update(f"kiwipiepy {metadata.version('kiwipiepy')}, ours {KIWI_RULES_REVISION}".encode())
    return h.hexdigest()[:16]
