"""The model card says which normalizer rules the saved tokenizer applies and which it cannot."""

from __future__ import annotations

from kopretrain.hub.modelcard import _data, _preprocessing, _use, normalizer_rules

NORMALIZE = {"emoji": "keep", "max_repeat": 2, "skip_rules": [], "spacing": False, "typos": "none"}
APPLIED = ["invisible", "nfc", "fullwidth", "compat_jamo", "whitespace", "email", "url", "phone", "mention",
           "censor", "repeat"]


def info(normalize=NORMALIZE, record=None, pretokenize="eojeol") -> dict:
    extra = {"tokenizer_normalizer": record} if record else {}
    return {"kind": "classifier", "repo_id": "me/model", "pipeline_tag": "text-classification",
            "textprep": {"normalize": normalize, "pretokenize": pretokenize, "extra": extra},
            "rules": normalizer_rules(normalize), "kopretrain_version": "0.test", "max_length": 128,
            "vocab_size": 100, "vocab_hash": "sha256:x"}


def test_all_rules_in_the_tokenizer_need_no_recipe():
    card = info(record={"applied": APPLIED, "not_applied": {}, "version": 1})
    use, prep = _use(card), _preprocessing(card)
    assert "the tokenizer applies that normalization itself" in use and "prep.prepare" not in use
    assert "10,000 of 10,000 NSMC reviews" in use
    assert "truncation=True)" in use  # cut where the model was fine-tuned, not crash past 512 tokens
    assert "applies invisible, nfc" in prep and "cannot apply" not in prep


def test_rules_the_tokenizer_cannot_apply_are_named_with_their_effect():
    from kopretrain.text.tokenizer_rules import tokenizer_rules

    normalize = {**NORMALIZE, "spacing": True}
    rules = tokenizer_rules(normalize)
    card = info(normalize, {"applied": rules.applied, "not_applied": rules.not_applied, "version": 1})
    use, prep = _use(card), _preprocessing(card)
    assert "prep.prepare" in use and "but not spacing" in use  # the recipe stays, and says why
    assert "The tokenizer cannot apply" in prep and "- `spacing`: kiwipiepy spacing" in prep
    assert "10,000 of 10,000" not in prep  # the agreement holds only when every rule is inside
    assert "74.9% of NSMC reviews" in prep


def test_an_older_folder_without_a_record_keeps_the_recipe():
    card = info()
    assert "prep.prepare" in _use(card)
    assert "The tokenizer applies none of these rules" in _preprocessing(card)
    morpheme = info(record={"applied": [], "not_applied": {"pretokenize": "kiwipiepy morpheme ..."}},
                    pretokenize="morpheme")
    assert "prep.prepare" in _use(morpheme) and "- `pretokenize`: kiwipiepy" in _preprocessing(morpheme)


def test_a_self_trained_model_says_how_many_rows_a_person_labeled():
    stats = {"train_examples": 10000, "train_label_counts": {"negative": 3300, "neutral": 3400, "positive": 3300}}
    card = {**info(), "dataset": {"name": "NSMC"}, "finetune": {"stats": stats}}
    assert "Fine-tuned on 10000 labeled reviews" in _data(card)
    stats["pseudo_labels"] = {"rows": 9000, "pool": 40000, "accuracy_where_known": 0.671}
    data = _data(card)
    assert "labeled reviews" not in data and "1000 labeled and 9000 labeled by a teacher model" in data
    assert "on 40000 unlabeled training reviews (right on 67% of those" in data


def test_encoder_cards_use_the_tokenizers_mask_token_and_point_at_the_generator():
    for kind, tag in (("mlm", "fill-mask"), ("rtd", "feature-extraction")):
        card = {**info(), "kind": kind, "pipeline_tag": tag}
        use = _use(card)
        assert "[MASK]" not in use  # XLM-R vocabularies mask with <mask>
        if kind == "mlm":
            assert "pipe.tokenizer.mask_token" in use
        assert ('subfolder="generator"' in use) == (kind == "rtd")


def test_rule_descriptions_are_whole_sentences_in_markdown():
    rules = dict(normalizer_rules({"max_repeat": 2, "emoji": "keep"}))
    assert all("``" not in doc and ":func:" not in doc and doc.endswith((".", ")")) for doc in rules.values()), rules
    assert "Digits never collapse (soynlp" in rules["repeat"]


def test_training_line_says_what_decided_the_length_and_the_layers_kept():
    """"epochs 3.0" was printed for a run that max_steps ended before one epoch; keep_layers was left out."""
    from kopretrain.hub.modelcard import _training

    cfg = {"epochs": 3.0, "max_steps": 12, "lr": 1e-4, "keep_layers": 2, "seed": 1}
    text = _training({"finetune": {"config": cfg, "stats": {"global_steps": 12}}})
    assert "epochs" not in text and "max_steps 12" in text and "keep_layers 2" in text
    assert "ran 12 optimizer steps" in text
    assert "epochs 3.0" in _training({"finetune": {"config": {**cfg, "max_steps": -1}}})


def test_a_classifier_card_opens_the_hub_widget_with_examples():
    from kopretrain.hub.modelcard import card_data

    card = {**info(), "license": "mit", "datasets": [], "model_name": "m", "dataset": {"name": "d", "type": "d"},
            "widget": ["배송 빨랐어요 최고", "별로예요"]}
    assert card_data(card).to_dict()["widget"] == [{"text": "배송 빨랐어요 최고"}, {"text": "별로예요"}]
    assert "widget" not in card_data({**card, "kind": "mlm", "pipeline_tag": "fill-mask"}).to_dict()
