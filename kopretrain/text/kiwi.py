"""kiwipiepy pieces shared by normalize (optional spacing/typo rules) and analyze.

``get_kiwi`` builds ONE ``Kiwi`` per process and settings (start-up ~1.2 s) with the placeholder
tokens registered as single morphemes: left alone, kiwi splits ``[URL]`` into ``[``/SSO,
``URL``/SL, ``]``/SSC. kiwipiepy is imported inside functions so ``kopretrain --help`` stays fast.
"""

from __future__ import annotations

import functools
import os
import re

from kopretrain.text.rules import PLACEHOLDER_TOKENS

# Kiwi tags for the placeholders: kiwi's own web tags where one exists; [CENSORED] stands in
# for a (usually abusive) word, so it is a common noun.
PLACEHOLDER_TAGS = {
    "[URL]": "W_URL", "[EMAIL]": "W_EMAIL", "[PHONE]": "W_SERIAL", "[USER]": "W_MENTION",
    "[CENSORED]": "NNG", "[EMOJI]": "W_EMOJI",
}
assert set(PLACEHOLDER_TAGS) == set(PLACEHOLDER_TOKENS)


PLACEHOLDER_TAG = "W_PLACEHOLDER"  # what kiwi reports for any placeholder; see placeholder_tags()


def placeholder_tags(forms, tags):
    """Tags with each placeholder's own tag (``[URL]`` -> W_URL) in place of ``W_PLACEHOLDER``."""
    if PLACEHOLDER_TAG not in tags:  # nearly every text: one C-level scan
        return tags
    return [PLACEHOLDER_TAGS.get(f, "NNP") if g == PLACEHOLDER_TAG else g for f, g in zip(forms, tags)]


def resolve_workers(num_workers: int) -> int:
    """0 means every core of this machine."""
    return num_workers if num_workers > 0 else (os.cpu_count() or 1)


def get_kiwi(num_workers: int = 0, model_type: str = "none"):
    """A cached ``Kiwi(num_workers=N)`` that keeps each placeholder as one morpheme.

    ``kiwi.tokenize("[URL] 참고")`` -> ``[("[URL]", "W_PLACEHOLDER", 0, 5), ("참고", "NNG", 6, 2)]``;
    :func:`placeholder_tags` turns ``W_PLACEHOLDER`` into the placeholder's own tag (``W_URL``).
    """
    return _kiwi(resolve_workers(num_workers), model_type)


@functools.lru_cache(maxsize=4)
def _kiwi(num_workers: int, model_type: str):
    from kiwipiepy import Kiwi

    kiwi = Kiwi(num_workers=num_workers, model_type=model_type)
    # The base tag (NNP) is what kiwi's language model sees; user_value overrides the reported
    # tag so downstream code can tell placeholders apart. ONE alternation, not a pattern per
    # placeholder: kiwi runs every pattern over every text on the calling thread (six patterns
    # were ~1 s per 100k reviews taken from the analysis threads); placeholder_tags() then gives
    # each placeholder its own tag.
    pattern = "|".join(re.escape(token) for token in PLACEHOLDER_TAGS)
    kiwi.add_re_word(pattern, "NNP", {"tag": PLACEHOLDER_TAG})
    # kiwi loads parts of its model on first use; do it here so start-up is paid (and timed) once.
    kiwi.tokenize("모델 준비")
    return kiwi


def _fixed_point(texts: list[str], step, rounds: int = 3) -> list[str]:
    """Apply a batch rewrite until texts stop changing (kiwi's spacing is not a projection:
    ~0.2% of NSMC reviews change again on a second pass), so the rule stays idempotent."""
    out = list(texts)
    todo = list(range(len(out)))
    for _ in range(rounds):
        if not todo:
            break
        new = step([out[i] for i in todo])
        changed = [i for i, t in zip(todo, new) if t != out[i]]
        for i, t in zip(todo, new):
            out[i] = t
        todo = changed
    return out


class Spacing:
    """Fix spacing with ``Kiwi.space`` (batch, N threads; ~1,400 texts/s on 2 cores).

    ``"이영화정말재밌어요최고!!"`` -> ``"이 영화 정말 재밌어요 최고!!"``.
    """

    name = "spacing"

    def __init__(self, num_workers: int = 0):
        self.num_workers = num_workers

    def apply_many(self, texts: list[str]) -> list[str]:
        kiwi = get_kiwi(self.num_workers)

        def step(batch):
            return [" ".join(t.split()) for t in kiwi.space(batch)]

        return _fixed_point(texts, step)


class Typos:
    """Correct typos with kiwipiepy's typo model, rewriting only the words kiwi corrected
    (re-joining whole texts would also rewrite 그게 -> 그것이 and spacing). ~600 texts/s.

    ``"정말 잼있어요"`` -> ``"정말 재밌어요"``. Some fixes are wrong (유지태 -> 류지태), hence off
    by default.
    """

    name = "typos"

    def __init__(self, mode: str = "basic_with_continual", num_workers: int = 0):
        self.mode = mode
        self.num_workers = num_workers

    def _fix(self, kiwi, text: str, tokens) -> str:
        parts, pos, i = [], 0, 0
        for word in re.finditer(r"\S+", text):
            group = []
            while i < len(tokens) and tokens[i].start < word.end():
                if tokens[i].start >= word.start():
                    group.append(tokens[i])
                i += 1
            # Z_CODA (욬 -> 요 + ㅋ) carries a typo cost but is not a typo.
            if any(t.typo_cost > 0 and t.tag != "Z_CODA" for t in group):
                try:
                    fixed = kiwi.join([(t.form, t.tag) for t in group])
                except ValueError:  # a tag join cannot rebuild (our placeholders): keep the word
                    continue
                # a word stays one word (join spaces 재밌어요 from the ㅋㅋ glued to it)
                parts += [text[pos:word.start()], "".join(fixed.split())]
                pos = word.end()
        return "".join(parts) + text[pos:] if parts else text

    def apply_many(self, texts: list[str]) -> list[str]:
        kiwi = get_kiwi(self.num_workers)

        def step(batch):
            results = kiwi.tokenize(batch, typos=self.mode)
            return [self._fix(kiwi, t, toks) for t, toks in zip(batch, results)]

        return _fixed_point(texts, step)
