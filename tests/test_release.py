"""release: a folder that loads offline, labels like `kopretrain label`, a parseable card with the
metrics, provenance from the stage chain, and a push path tested with a fake Hub client."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from kopretrain import release as R
from kopretrain.cli import main
from kopretrain.runs.records import StageError, StageRun
from kopretrain.runs.stage import StageConfig
from kopretrain.testing import REVIEWS, tiny_classifier, tiny_tokenizer

SECRET = "hf_kopretrainTestTokenThatMustNeverBeWritten"
CLEAN = ["배송 빨랐어요 최고", "별로예요 다시는 안 사요", "그냥 그래요", "포장이 꼼꼼해서 좋았어요", "돈 아까워요"]


@dataclass
class FakeIngest(StageConfig):
    INPUTS: ClassVar[tuple[str, ...]] = ("input",)
    input: str = ""
    name: str = "tiny-reviews"
    license: str = "cc0-1.0"


@dataclass
class FakeNormalize(StageConfig):
    INPUTS: ClassVar[tuple[str, ...]] = ("input",)
    input: str = ""
    max_repeat: int = 2


@dataclass
class FakeFinetune(StageConfig):
    INPUTS: ClassVar[tuple[str, ...]] = ("data",)
    model: str = "some-org/ko-base"  # a Hub id: becomes the card's base_model
    revision: str = "v2021"
    data: str = ""
    epochs: float = 1.0


@dataclass
class FakeEvaluate(StageConfig):
    INPUTS: ClassVar[tuple[str, ...]] = ("model", "data")
    model: str = ""
    data: str = ""


METRICS = {"split": "test", "n": 45, "notes": ["a note from evaluate"],
           "model": {"accuracy": 0.8123, "macro_f1": 0.7456, "ece": 0.031, "binary": {"accuracy": 0.91},
                     "per_class": {"negative": {"precision": 0.8, "recall": 0.7, "f1": 0.75, "support": 15}}},
           "baseline": {"accuracy": 0.7, "macro_f1": 0.65}}


@pytest.fixture(scope="module", autouse=True)
def hub_card_of_the_base(tmp_path_factory):
    """The Hub's model card of FakeFinetune's base, as huggingface_hub would download it: release
    reads the base's license from it (and refuses to guess one without it)."""
    from kopretrain.hub import loading

    card = tmp_path_factory.mktemp("hub") / "README.md"
    card.write_text("---\nlicense: apache-2.0\nlanguage: ko\n---\n# ko-base\n", encoding="utf-8")
    real = loading.model_file
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loading, "model_file", lambda ref, name, revision=None: card if (ref, name) == (
            FakeFinetune.model, "README.md") else real(ref, name, revision))
        yield


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    """ingest -> normalize -> finetune (a tiny classifier) -> evaluate, with real stage records."""
    root = tmp_path_factory.mktemp("release")
    src = root / "reviews.csv"
    src.write_text("text,stars\n좋아요,5\n", encoding="utf-8")
    out = {name: root / name for name in ("ingest", "normalize", "finetune", "evaluate")}
    with StageRun("ingest", FakeIngest(input=str(src)), out["ingest"], log=lambda *a: None) as run:
        (run.dir / "README.md").write_text("---\nlicense: cc0-1.0\n---\n# tiny-reviews\n\nINGEST-STATS 123 rows\n")
        run.stats.update({"splits": {"train": {"rows": 80}, "dev": {"rows": 10}, "test": {"rows": 10}},
                          "label_scheme": {"description": "stars 1-2 negative, 3 neutral, 4-5 positive"},
                          "sources": [{"name": "reviews.csv", "fingerprint": "sha256:abc"}]})
    with StageRun("normalize", FakeNormalize(input=str(out["ingest"])), out["normalize"], log=lambda *a: None):
        pass
    with StageRun("finetune", FakeFinetune(data=str(out["normalize"])), out["finetune"], log=lambda *a: None) as run:
        tiny_classifier(run.dir, textprep={"normalize": {"max_repeat": 2}})
        run.stats.update({"train_examples": 80, "train_label_counts": {"negative": 20, "neutral": 30, "positive": 30},
                          "calibration": {"folded": True, "temperature": 1.7, "dev_ece_before": 0.2,
                                          "dev_ece_after": 0.05, "dev_examples": 10},
                          "soup": {"members": 3, "kept": [2, 0], "dev_macro_f1": 0.61}})
    with StageRun("evaluate", FakeEvaluate(model=str(out["finetune"]), data=str(out["normalize"])), out["evaluate"],
                  log=lambda *a: None) as run:
        (run.dir / "metrics.json").write_text(json.dumps(METRICS))
    return out


@pytest.fixture(scope="module")
def released(chain, tmp_path_factory) -> Path:
    data_card = tmp_path_factory.mktemp("cards") / "card.md"
    data_card.write_text("# Given data card\n\nHAND-WRITTEN CARD\n", encoding="utf-8")
    cfg = R.ReleaseConfig(model=str(chain["finetune"]), evaluation=str(chain["evaluate"]), data_card=str(data_card),
                          repo_id="kopretrain-test/tiny-sentiment", datasets=["kopretrain-test/tiny-reviews"])
    return R.execute(cfg, chain["finetune"].parent / "release")


def test_folder_has_what_a_user_needs_and_nothing_else(released):
    names = {p.name for p in released.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "kopretrain.json",
            "README.md", "data_card.md", "provenance.json"} <= names
    assert not {"training_args.bin", "pytorch_model.bin", ".fingerprint"} & names
    config = json.loads((released / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    card = (released / "data_card.md").read_text()
    assert "HAND-WRITTEN CARD" in card and "INGEST-STATS 123 rows" in card


@pytest.mark.parametrize("given_card", [False, True])
def test_data_card_says_its_numbers_come_from_the_ingest_output_not_this_folder(tmp_path, monkeypatch, given_card):
    """The ingest README says its numbers were measured on the files beside it; a release ships
    none of those files, so its data_card.md must name the ingest output instead."""
    from kopretrain.ingest import IngestConfig
    from kopretrain.runs import registry

    monkeypatch.chdir(tmp_path)  # a release writes paths relative to the working directory
    src = tmp_path / "reviews.csv"
    src.write_text("text,stars\n" + "".join(f"{t} {i},{i % 5 + 1}\n" for i, t in enumerate(REVIEWS * 4)),
                   encoding="utf-8")
    ingest = registry.execute("ingest", IngestConfig(input=str(src), label_scheme="stars5"), tmp_path / "ingest")
    readme = (ingest / "README.md").read_text(encoding="utf-8")
    assert "measured on the files in this folder" in readme  # true there: the splits sit beside it
    given = tmp_path / "card.md"
    given.write_text("# Given data card\n", encoding="utf-8")
    out = tmp_path / "release"
    out.mkdir()
    cfg = R.ReleaseConfig(data_card=str(given) if given_card else "")
    R.write_data_card(cfg, {"dataset": {"ingest_readme": str(ingest / "README.md")}}, out)
    card = (out / "data_card.md").read_text(encoding="utf-8")
    assert "files in this folder" not in card and "Every dropped record is in `rejected.jsonl`" not in card
    assert "measured on the ingest output this model was built from (`ingest`)" in card
    assert "its data files are not part of this folder" in card and "that output's `rejected.jsonl`" in card
    assert str(tmp_path / "ingest") not in card  # named without the author's local path
    assert str(src) in readme and str(tmp_path) not in card  # the input file's absolute path neither
    assert "reviews.csv" in card
    assert R.portable_text("see https://huggingface.co/x/y and 1/4 of /no/such/path") == \
        "see https://huggingface.co/x/y and 1/4 of /no/such/path"  # only paths that exist here change


def test_loads_offline_with_pipeline_and_matches_kopretrain_label(released, tmp_path):
    from transformers import pipeline

    from kopretrain.label import LabelConfig, execute
    from kopretrain.text.textprep import load

    prep = load(released)
    assert prep.normalize is not None and prep.prepare(CLEAN) == CLEAN  # texts the normalizer leaves alone
    pipe = pipeline("text-classification", model=str(released), device=-1)
    hf = [r["label"] for r in pipe(CLEAN)]
    src = tmp_path / "in.csv"
    src.write_text("text\n" + "\n".join(CLEAN) + "\n", encoding="utf-8")
    out = execute(LabelConfig(model=str(released), input=str(src), precision="fp32", progress=False),
                  tmp_path / "out.csv")
    import pandas as pd

    ours = list(pd.read_csv(out)["label"])
    assert ours == hf
    assert len(set(hf)) > 1  # a constant model would make this comparison meaningless


def test_model_card_parses_and_carries_metrics_and_provenance(released):
    from huggingface_hub import ModelCard

    card = ModelCard.load(released / "README.md")
    data = card.data
    assert data.language == "ko" and data.license == "apache-2.0"
    assert data.pipeline_tag == "text-classification" and data.library_name == "transformers"
    assert data.base_model == "some-org/ko-base" and data.to_dict()["base_model_revision"] == "v2021"
    assert data.datasets == ["kopretrain-test/tiny-reviews"]
    results = {(r.metric_type, r.metric_config): r.metric_value for r in data.eval_results}
    assert results[("accuracy", None)] == 0.8123 and results[("f1", "macro")] == 0.7456
    assert results[("accuracy", "binary")] == 0.91
    assert {r.dataset_split for r in data.eval_results} == {"test"}
    text = card.text
    for needle in ("neutral class is fuzzy", "kopretrain.text.textprep", "prep.prepare", "kopretrain label",
                   "data_card.md", "stars 1-2 negative", "a note from evaluate", "`max_repeat`", "v2021",
                   "## Requirements", 'pip install "transformers>=4.57"', "no remote code", "## Citation",
                   "@software{kopretrain", "cite the base model, [some-org/ko-base]",
                   "temperature of 1.700 fitted on dev is folded into the classifier head",
                   "a weight soup: the average of 2 of 3 fine-tunes"):
        assert needle in text, needle
    prov = json.loads((released / "provenance.json").read_text())
    assert set(prov["stages"]) == {"ingest", "normalize", "finetune"}
    assert prov["vocab_sha256"].startswith("sha256:") and prov["vocab_sha256"] in text


def test_dry_run_lists_files_sizes_and_repo(chain, released, capsys):
    cfg = R.ReleaseConfig(model=str(chain["finetune"]), repo_id="kopretrain-test/tiny", private=True,
                          revision="v1", verify=False)
    text = R.dry_run(released, cfg)
    assert "kopretrain-test/tiny" in text and "private" in text and "branch v1" in text
    assert "model.safetensors" in text and "kB" in text
    # the count stage.json records (and the stage prints) is the number of files listed
    listed = [line for line in text.splitlines()[1:] if line.startswith("    ")]
    recorded = json.loads((released / "stage.json").read_text())["stats"]["files"]
    assert recorded == len(listed) == len(R.upload_list(released)) and f"{recorded} files" in text


class FakeHub:
    def __init__(self, public_repo: bool = False):
        self.calls = []
        self.public_repo = public_repo  # the repo exists already, public

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def repo_info(self, repo_id, **kw):
        created = next(c[2] for c in self.calls if c[0] == "create_repo")
        return type("Info", (), {"private": bool(created["private"]) and not self.public_repo})()

    def create_branch(self, repo_id, **kw):
        self.calls.append(("create_branch", repo_id, kw))

    def upload_folder(self, **kw):
        from huggingface_hub.utils import filter_repo_objects  # the Hub client's own pattern matching

        found = [p.relative_to(kw["folder_path"]).as_posix() for p in Path(kw["folder_path"]).rglob("*") if p.is_file()]
        files = sorted(filter_repo_objects(found, allow_patterns=kw.get("allow_patterns"),
                                           ignore_patterns=kw.get("ignore_patterns")))
        self.calls.append(("upload_folder", kw["repo_id"], {**kw, "files": files}))
        return type("Commit", (), {"commit_url": "https://huggingface.co/x/commit/1"})()


def test_push_sends_the_folder_and_never_writes_the_token(chain, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    hub = FakeHub()
    cfg = R.ReleaseConfig(model=str(chain["finetune"]), evaluation=str(chain["evaluate"]),
                          repo_id="kopretrain-test/tiny-sentiment", push=True, private=True, revision="exp-1")
    out = R.execute(cfg, tmp_path / "release", client=hub)
    (create, repo, kw), (branch, _, bkw), (upload, _, ukw) = hub.calls
    assert (create, repo, kw["private"], kw["exist_ok"]) == ("create_repo", "kopretrain-test/tiny-sentiment", True, True)
    assert (branch, bkw["branch"]) == ("create_branch", "exp-1")
    assert upload == "upload_folder" and ukw["revision"] == "exp-1" and Path(ukw["folder_path"]) == out
    assert ukw["delete_patterns"] == "*"  # the branch mirrors the folder: an earlier release's extra files go
    assert {"README.md", "model.safetensors", "config.json", "kopretrain.json"} <= set(ukw["files"])
    # what the dry run lists is exactly what goes up: no run record, no dotfile at any depth
    (out / "generator").mkdir(exist_ok=True)
    (out / "generator" / ".notes").write_text("local")
    R.push(out, cfg, client=hub)
    assert hub.calls[-1][2]["files"] == sorted(name for name, _ in R.upload_list(out))
    assert "stage.json" not in hub.calls[-1][2]["files"] and "generator/.notes" not in hub.calls[-1][2]["files"]
    logged = capsys.readouterr()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in logged.out + logged.err


def test_push_without_network_or_token_fails_clearly_and_keeps_the_folder(chain, tmp_path, monkeypatch):
    import huggingface_hub

    cfg = R.ReleaseConfig(model=str(chain["finetune"]), repo_id="kopretrain-test/tiny", push=True, verify=False)

    class Offline(FakeHub):
        def create_repo(self, repo_id, **kw):
            raise huggingface_hub.errors.OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode")

    with pytest.raises(StageError, match="failed .*OfflineModeIsEnabled.*is complete: rerun with --push"):
        R.execute(cfg, tmp_path / "release", client=Offline())
    assert (tmp_path / "release" / "model.safetensors").is_file() and (tmp_path / "release" / "README.md").is_file()
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(StageError, match="no Hugging Face token"):
        R.execute(cfg, tmp_path / "release")


def test_evaluation_of_another_model_is_refused(chain, tmp_path):
    other = tiny_classifier(tmp_path / "other")
    cfg = R.ReleaseConfig(model=str(other), evaluation=str(chain["evaluate"]), verify=False, license="mit")
    with pytest.raises(StageError, match="scored another model"):
        R.execute(cfg, tmp_path / "release")


def _encoder(directory: Path, kind: str) -> Path:
    from transformers import BertConfig, BertForMaskedLM, ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

    tok = tiny_tokenizer(REVIEWS, directory)
    common = dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=64)
    if kind == "mlm":
        BertForMaskedLM(BertConfig(**common)).save_pretrained(directory)
        metrics = {"perplexity": 123.4, "mlm_accuracy": 0.12, "loss": 4.8156}
    else:
        ElectraForPreTraining(ElectraConfig(embedding_size=32, **common)).save_pretrained(directory)
        tiny_tokenizer(REVIEWS, directory / "generator")
        ElectraForMaskedLM(ElectraConfig(embedding_size=32, **common)).save_pretrained(directory / "generator")
        metrics = {"disc_accuracy": 0.93, "disc_auc": 0.81, "gen_perplexity": 240.0}
    (directory / "metrics.json").write_text(json.dumps({"final": metrics, "history": []}))
    return directory


@pytest.mark.parametrize("kind,tag,metric", [("mlm", "fill-mask", "perplexity"), ("rtd", "feature-extraction", "disc_auc")])
def test_pretrained_encoders_are_released_with_pretraining_metrics(tmp_path, kind, tag, metric):
    from huggingface_hub import ModelCard

    model = _encoder(tmp_path / kind, kind)
    out = R.execute(R.ReleaseConfig(model=str(model), license="mit"), tmp_path / "release")
    data = ModelCard.load(out / "README.md").data
    assert data.pipeline_tag == tag and data.license == "mit"
    assert metric in {r.metric_type for r in data.eval_results}
    if kind == "rtd":
        assert (out / "generator" / "model.safetensors").is_file()
    else:
        assert json.loads((out / "stage.json").read_text())["stats"]["examples"]  # fill-mask ran on the folder


def test_cli_out_alias_and_config_errors(chain, tmp_path, capsys):
    assert main(["release", "--model", str(chain["finetune"]), "--out", str(tmp_path / "r"), "--no-verify"]) == 0
    assert (tmp_path / "r" / "README.md").is_file() and "dry run" in capsys.readouterr().out
    assert main(["release", "--model", str(chain["finetune"]), "--out", str(tmp_path / "r2"), "--push"]) == 2
    assert "--push needs --repo-id" in capsys.readouterr().err
    for bad in ("me/a--b", "me/x.git", "me/" + "a" * 97):  # the Hub's rules, before the folder is built
        assert main(["release", "--model", str(chain["finetune"]), "--out", str(tmp_path / "r4"), "--repo-id", bad]) == 2
        assert "the Hub would refuse it" in capsys.readouterr().err and not (tmp_path / "r4").exists()
    labels_missing = tmp_path / "nolabels"
    tiny_classifier(labels_missing)
    config = json.loads((labels_missing / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "LABEL_0", "1": "LABEL_1"}, {"LABEL_0": 0, "LABEL_1": 1}
    (labels_missing / "config.json").write_text(json.dumps(config))
    assert main(["release", "--model", str(labels_missing), "--out", str(tmp_path / "r3")]) == 2
    assert "no sentiment labels" in capsys.readouterr().err


def test_default_model_name_is_not_just_a_stage_name(tmp_path):
    from kopretrain.hub.provenance import _folder_name

    assert _folder_name(tmp_path / "quickstart" / "finetune") == "quickstart-finetune"
    assert _folder_name(tmp_path / "my-sentiment-model") == "my-sentiment-model"


def test_card_title_says_who_pretrained_a_model_without_a_base():
    from kopretrain.hub.modelcard import _title

    info = {"kind": "classifier", "model_name": "m", "kopretrain_version": "0", "architecture": "A",
            "parameters": 5_000_000, "base_model": None, "pretrain": {"config": {"objective": "rtd"}}}
    assert "pretrained from scratch by kopretrain (RTD)" in _title(info)
    assert "trained from scratch (no base model)" in _title({**info, "pretrain": None})
    assert "origin not recorded" in _title({**info, "pretrain": None, "stages": []})


def test_a_folder_without_records_needs_a_license_and_is_not_called_scratch(tmp_path):
    """A model trained elsewhere was published as apache-2.0 and "trained from scratch"."""
    model = tiny_classifier(tmp_path / "elsewhere")
    with pytest.raises(StageError, match="no kopretrain records .* pass --license"):
        R.execute(R.ReleaseConfig(model=str(model), verify=False), tmp_path / "r1")
    out = R.execute(R.ReleaseConfig(model=str(model), verify=False, license="mit"), tmp_path / "r2")
    text = (out / "README.md").read_text()
    assert "origin not recorded" in text and "from scratch" not in text


def test_release_publishes_no_local_paths_and_no_remote_code_pointer(chain, tmp_path, monkeypatch):
    """provenance.json carries no absolute path of the author's machine, the local run record is not
    uploaded, and an auto_map (code that is not shipped) is dropped from the released config."""
    monkeypatch.chdir(tmp_path)  # the chain lives elsewhere: its absolute paths must not leak
    config = json.loads((chain["finetune"] / "config.json").read_text())
    (chain["finetune"] / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "x.Y"}}))
    try:
        out = R.execute(R.ReleaseConfig(model=str(chain["finetune"]), evaluation=str(chain["evaluate"]), verify=False),
                        tmp_path / "release")
    finally:
        (chain["finetune"] / "config.json").write_text(json.dumps(config))

    def strings(obj):
        if isinstance(obj, dict):
            return [s for v in obj.values() for s in strings(v)]
        if isinstance(obj, list):
            return [s for v in obj for s in strings(v)]
        return [obj] if isinstance(obj, str) else []

    provenance = json.loads((out / "provenance.json").read_text())
    leaked = [s for s in strings(provenance) if s.startswith("/")]
    assert leaked == [] and any(s.startswith("<local>/") for s in strings(provenance))
    assert "auto_map" not in json.loads((out / "config.json").read_text())
    assert "stage.json" not in [name for name, _ in R.upload_list(out)]


def test_the_license_follows_the_base_checkpoints_card_unless_given(tmp_path, capsys):
    """A fine-tune of a cc-by-nc checkpoint must not be published as apache-2.0 by default."""
    from huggingface_hub import ModelCard

    base = tiny_classifier(tmp_path / "base")
    (base / "README.md").write_text("---\nlicense: cc-by-nc-4.0\nlanguage: ko\n---\n# a base model\n")
    with StageRun("finetune", FakeFinetune(model=str(base), revision=""), tmp_path / "ft", log=lambda *a: None) as run:
        tiny_classifier(run.dir)
    inherited = R.execute(R.ReleaseConfig(model=str(tmp_path / "ft"), verify=False), tmp_path / "r1")
    assert ModelCard.load(inherited / "README.md").data.license == "cc-by-nc-4.0"
    given = R.execute(R.ReleaseConfig(model=str(tmp_path / "ft"), license="mit", verify=False), tmp_path / "r2")
    assert ModelCard.load(given / "README.md").data.license == "mit"
    assert "is licensed cc-by-nc-4.0; the card says --license mit" in capsys.readouterr().out
