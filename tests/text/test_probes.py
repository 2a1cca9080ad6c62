"""The rules digest: it sees every rule, and changes exactly when what the rules do changes."""

from __future__ import annotations

import pytest

from kopretrain.text import probes, rules
from kopretrain.text.normalizer import Normalizer, NormalizerConfig
from kopretrain.text.probes import PROBE_TEXTS, rules_digest


@pytest.fixture(autouse=True)
def fresh_digests():
    probes._digest.cache_clear()
    yield
    probes._digest.cache_clear()


@pytest.mark.parametrize("emoji", ["keep", "map"])
def test_every_rule_and_filter_reason_meets_a_probe(emoji):
    norm = Normalizer(NormalizerConfig(emoji=emoji))
    for text in PROBE_TEXTS:
        norm.check(norm.normalize(text))
    regex_rules = [name for name, _ in rules.build_rules(emoji=emoji)]
    assert [name for name in regex_rules if norm.counts[name] == 0] == []  # a rule no probe meets is not versioned
    assert set(norm.reasons) == {"empty", "too_long", "placeholder_only", "too_little_hangul"}


def test_digest_follows_the_rules_not_the_speed_settings():
    base = rules_digest(NormalizerConfig())
    assert rules_digest({"emoji": "keep", "num_workers": 4, "input": "x"}) == base  # the rest at their defaults
    assert rules_digest({f: getattr(NormalizerConfig(), f) for f in NormalizerConfig.__dataclass_fields__}
                        | {"num_workers": 7, "batch_size": 5, "rules_digest": "old"}) == base
    assert rules_digest(NormalizerConfig(emoji="map")) != base
    assert rules_digest(NormalizerConfig(max_repeat=3)) != base
    assert rules_digest(NormalizerConfig(skip_rules=["censor"])) != base
    assert rules_digest(NormalizerConfig(min_hangul_ratio=0.0)) != base  # the filter counts too
    assert rules_digest(NormalizerConfig(spacing=True)) != base  # kiwipiepy rules: by its version


def test_digest_changes_when_a_rule_does(monkeypatch):
    base = rules_digest(NormalizerConfig())
    original = rules.censor
    monkeypatch.setattr(rules, "censor", lambda text: original(text).replace("ZOO", "Z00"))
    probes._digest.cache_clear()
    assert rules_digest(NormalizerConfig()) != base
    monkeypatch.setattr(rules, "censor", original)
    probes._digest.cache_clear()
    assert rules_digest(NormalizerConfig()) == base
