"""release --push and the card's metadata: what goes up, to which repository and branch, and
that a folder previewed (or built by an earlier version) is not rebuilt."""

from __future__ import annotations

import dataclasses
import json

import pytest

from kopretrain import release as R
from kopretrain.runs.records import StageError, StageRun
from kopretrain.testing import tiny_classifier
from tests.test_release import FakeFinetune, FakeHub, chain, hub_card_of_the_base  # noqa: F401 - fixtures

def test_private_never_publishes_and_public_follows_the_account_default(chain, tmp_path):
    """create_repo(private=False) made an org's private-by-default repo public; --private uploaded
    into an existing public repo."""
    cfg = R.ReleaseConfig(model=str(chain["finetune"]), repo_id="kopretrain-test/tiny", push=True, verify=False)
    hub = FakeHub()
    out = R.execute(cfg, tmp_path / "release", client=hub)
    assert hub.calls[0][2]["private"] is None
    private = dataclasses.replace(cfg, private=True)
    public = FakeHub(public_repo=True)
    with pytest.raises(StageError, match="exists and is public; nothing was uploaded"):
        R.push(out, private, client=public)
    assert [c[0] for c in public.calls] == ["create_repo"]


@pytest.mark.parametrize("options, message", [
    ({"license": "MIT License"}, "--license 'MIT License': give a Hub license id"),
    ({"base_model": "beomi/KcELECTRA base"}, "--base-model 'beomi/KcELECTRA base': not a Hub id"),
    ({"datasets": ["e9t/nsmc", "a b"]}, "--datasets 'a b': not a Hub id"),
])
def test_card_metadata_options_are_checked_before_any_work(options, message):
    with pytest.raises(ValueError, match=message):
        R.ReleaseConfig(model="m", **options)


def test_a_fine_tune_of_a_local_checkpoint_is_not_called_scratch(tmp_path):
    """The nsmc-3class pipeline's case: a fine-tune of a downloaded checkpoint folder."""
    from huggingface_hub import ModelCard

    base = tiny_classifier(tmp_path / "base")
    with StageRun("finetune", FakeFinetune(model=str(base), revision=""), tmp_path / "ft", log=lambda *a: None) as run:
        tiny_classifier(run.dir)
    with pytest.raises(StageError, match="license of the base checkpoint .*base could not be read"):
        R.execute(R.ReleaseConfig(model=str(tmp_path / "ft"), verify=False), tmp_path / "r0")
    plain = R.execute(R.ReleaseConfig(model=str(tmp_path / "ft"), verify=False, license="mit"), tmp_path / "r1")
    text = (plain / "README.md").read_text()
    assert "continued from the local checkpoint `base`" in text and "from scratch" not in text
    (base / "README.md").write_text("---\nlicense: mit\nbase_model: intfloat/multilingual-e5-small\n---\n# base\n")
    declared = R.execute(R.ReleaseConfig(model=str(tmp_path / "ft"), verify=False), tmp_path / "r2")
    card = ModelCard.load(declared / "README.md")
    assert card.data.base_model == "intfloat/multilingual-e5-small" and "(a local copy, `base`)" in card.text


def test_parameters_count_the_encoder_and_only_sentencepiece_models_ship(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    from kopretrain.hub.provenance import _parameters

    save_file({"w": np.zeros((10, 3), dtype=np.float32)}, str(tmp_path / "model.safetensors"))
    save_file({"coef": np.zeros((100, 3), dtype=np.float32)}, str(tmp_path / "ngram_expert.safetensors"))
    assert _parameters(tmp_path) == 30
    for name in ("spiece.model", "classifier.model"):
        (tmp_path / name).write_bytes(b"x")
    copied = R.copy_model(tmp_path, tmp_path / "out")
    assert "spiece.model" in copied and "classifier.model" not in copied  # a *.model may be a pickle


def test_adding_push_after_a_dry_run_uploads_the_previewed_folder(chain, tmp_path):
    cfg = R.ReleaseConfig(model=str(chain["finetune"]), repo_id="kopretrain-test/tiny", verify=False)
    out = R.execute(cfg, tmp_path / "release")
    before = json.loads((out / "stage.json").read_text())["started"]
    hub = FakeHub()
    R.execute(dataclasses.replace(cfg, push=True, private=True), tmp_path / "release", client=hub)
    assert json.loads((out / "stage.json").read_text())["started"] == before  # not rebuilt
    assert [c[0] for c in hub.calls] == ["create_repo", "upload_folder"]


def test_a_release_to_a_branch_is_loaded_from_that_branch_in_the_card(chain, tmp_path):
    cfg = R.ReleaseConfig(model=str(chain["finetune"]), repo_id="kopretrain-test/tiny", revision="exp-1", verify=False)
    text = (R.execute(cfg, tmp_path / "release") / "README.md").read_text()
    assert 'model="kopretrain-test/tiny", revision="exp-1"' in text and "--model kopretrain-test/tiny --revision exp-1" in text


def test_a_release_folder_built_before_push_left_the_key_stays_up_to_date(chain, tmp_path):
    from kopretrain.runs.fingerprints import stage_fingerprint
    from kopretrain.runs.records import read_stage, write_json

    cfg = R.ReleaseConfig(model=str(chain["finetune"]), repo_id="kopretrain-test/tiny", verify=False)
    out = R.execute(cfg, tmp_path / "release")
    record = read_stage(out)
    old_key = {k: v for k, v in record["config"].items() if k not in R.ReleaseConfig.INPUTS}
    record["fingerprint"] = stage_fingerprint("release", old_key, record["inputs"])  # push/private in the key
    write_json(out / "stage.json", record)
    R.execute(cfg, tmp_path / "release")
    assert read_stage(out)["started"] == record["started"]  # not rebuilt
