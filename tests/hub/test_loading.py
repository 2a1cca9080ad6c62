"""Checkpoint loading: clear errors naming the option, safetensors only."""

from __future__ import annotations

import pytest

from kopretrain.hub.loading import check_model_ref, load_config, load_tokenizer, load_weights
from kopretrain.runs.records import StageError
from kopretrain.testing import tiny_classifier
from tests.fixtures.hub import fake_hub


def test_missing_paths_name_the_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageError, match="--tokenizer runs/vocab: no loadable tokenizer"):
        load_tokenizer("runs/vocab", what="tokenizer")  # was "Repo id must be in the form ..." from the Hub client
    with pytest.raises(StageError, match="--model ./nope: model directory not found"):
        check_model_ref("./nope")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    with pytest.raises(StageError, match="not a model directory .*a.txt"):
        check_model_ref(str(tmp_path / "notes"))


def test_a_revision_for_a_local_folder_is_refused(tmp_path):
    """label --revision v2 with a local --model loaded the folder as it is and said nothing."""
    model = tiny_classifier(tmp_path / "m")
    with pytest.raises(StageError, match="--revision v2 pins a Hub id, but --model .* is a local folder"):
        check_model_ref(str(model), revision="v2")
    check_model_ref(str(model))


def test_weights_load_only_from_safetensors(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = tiny_classifier(tmp_path / "m")
    assert load_config(str(model)).num_labels == 3 and load_tokenizer(str(model)) is not None
    assert load_weights(AutoModelForSequenceClassification, str(model)).num_labels == 3
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(model / "model.safetensors"), model / "pytorch_model.bin")  # a pickle beside it
    (model / "model.safetensors").unlink()
    with pytest.raises(StageError, match="cannot load safetensors weights.*no pickle"):
        load_weights(AutoModelForSequenceClassification, str(model))


def test_a_hub_model_brings_its_kopretrain_json_and_ngram_expert(tmp_path, monkeypatch, caplog):
    """A kopretrain model pushed to the Hub is used with the preparation and length it was
    fine-tuned with, and its n-gram expert, exactly as the same folder on disk."""
    from kopretrain.evaluation.baseline import Baseline
    from kopretrain.inference.classifier import Classifier
    from kopretrain.inference.ngram import NgramExpert

    sha = "a" * 40
    snapshot = fake_hub(monkeypatch, tmp_path / "hub", "me/kopclf", sha)
    tiny_classifier(snapshot, textprep={"normalize": {"max_repeat": 1}, "extra": {"max_length": 16}})
    texts = ["좋아요 최고", "별로예요", "그냥 그래요"] * 10
    NgramExpert.from_baseline(Baseline(seed=0).fit(texts, [2, 0, 1] * 10)).save(snapshot)
    for revision in (sha, None):
        clf = Classifier.load("me/kopclf", revision=revision)
        assert clf.max_length == 16 and clf.prep.normalize == {"max_repeat": 1}
        assert clf.ngram is not None
    # A plain Hub checkpoint without the files (cached as absent): None, without a warning.
    plain = fake_hub(monkeypatch, tmp_path / "hub2", "me/plain", sha)
    tiny_classifier(plain)
    (plain / "kopretrain.json").unlink()
    absent = plain.parent.parent / ".no_exist" / sha
    absent.mkdir(parents=True)
    (absent / "kopretrain.json").touch()
    from kopretrain.hub.loading import model_file

    with caplog.at_level("WARNING"):
        assert model_file("me/plain", "kopretrain.json", sha) is None
    assert not caplog.records
    # Not cached at all, offline: nobody can tell, and the warning says so.
    with caplog.at_level("WARNING"):
        assert model_file("me/plain", "ngram_expert.json", sha) is None
    assert "cannot tell" in caplog.text


def test_a_hub_id_without_a_network_loads_from_the_cache_or_fails_at_once(tmp_path, monkeypatch, capsys):
    """Without a network huggingface_hub retried every file for ~25 s, then printed a two-line error."""
    import socket

    import huggingface_hub.constants as constants

    from kopretrain.inference.classifier import Classifier

    tiny_classifier(fake_hub(monkeypatch, tmp_path / "hub", "me/kopclf", "b" * 40))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # not told: the network is just not there
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)

    def unreachable(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(StageError, match="--model me/other: huggingface.co cannot be reached and me/other is not in "
                                         "the local Hugging Face cache"):
        check_model_ref("me/other")
    assert Classifier.load("me/kopclf").model.config.num_labels == 3
    assert constants.HF_HUB_OFFLINE and "me/kopclf is loaded from the local cache" in capsys.readouterr().out
    # downloaded at a pinned commit only (no refs/main): found by its revision
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    pinned = fake_hub(monkeypatch, tmp_path / "hub2", "me/pinned", "c" * 40)
    tiny_classifier(pinned)
    (pinned.parent.parent / "refs" / "main").unlink()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(StageError, match="not in the local Hugging Face cache"):
        check_model_ref("me/pinned")
    check_model_ref("me/pinned", revision="c" * 40)
