"""Tiny models built offline from configs, for tests and benchmarks (no network, no weights download).

    from kopretrain.testing import tiny_classifier
    tiny_classifier("tmp/model", REVIEWS)   # BertForSequenceClassification, WordPiece from REVIEWS

The classifier is untrained; it is initialized with a large ``initializer_range`` so that different
reviews get clearly different labels and confidences (with the default 0.02 a random 2-layer model
gives every review the same label, which would make "same labels as X" tests pass trivially).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from kopretrain.data.files import LABELS

REVIEWS = [
    "배송 빨랐어요 최고", "별로예요 다시는 안 사요", "그냥 그래요", "완전 강추합니다 ㅋㅋ",
    "최악의 영화 시간 아까움", "연기는 좋은데 스토리가 아쉽다", "재밌어요", "노잼",
    "포장이 꼼꼼해서 좋았어요", "환불하고 싶네요", "보통입니다", "가격 대비 괜찮아요",
    "배우들 연기 미쳤다", "지루해서 졸았음", "두 번 봤어요 감동", "음악이 너무 좋다",
    "돈 아까워요", "평범한 영화", "기대 이하", "인생 영화 등극",
]


def tiny_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 400):
    """A WordPiece tokenizer trained with ``tokenizers`` and saved as a BertTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(list(texts), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]", model_max_length=128)
    fast.save_pretrained(out_dir)
    return fast


def tiny_classifier(out_dir: str | Path, texts: Iterable[str] = REVIEWS, *, hidden: int = 32, layers: int = 2,
                    heads: int = 2, vocab_size: int = 400, init_range: float = 0.5, seed: int = 0,
                    textprep: dict | None = None) -> Path:
    """Save an untrained 3-class BertForSequenceClassification (safetensors) + tokenizer + kopretrain.json."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from kopretrain.text.textprep import TextPrep

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = tiny_tokenizer(texts, out, vocab_size=vocab_size)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=hidden * 4, max_position_embeddings=128, pad_token_id=tok.pad_token_id,
        initializer_range=init_range,
        id2label=dict(enumerate(LABELS)), label2id={name: i for i, name in enumerate(LABELS)},
    )
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(out)
    TextPrep(**(textprep or {})).save(out)
    return out


def tiny_unigram_checkpoint(out_dir: str | Path, texts: Iterable[str] = REVIEWS, *, vocab_size: int = 300,
                            hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A tiny XLM-R-style checkpoint: a SentencePiece-like Unigram tokenizer (``▁`` word starts,
    ``<s> <pad> </s> <unk>`` first, ``<mask>`` last) and a headless BertModel, as a local directory
    (the shape of multilingual-e5 / KoBERT checkpoints, for tests without the Hub)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(list(texts), trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>"))
    tok.add_special_tokens(["<mask>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>",
                                   sep_token="</s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                   model_max_length=128)
    fast.save_pretrained(out)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(fast), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=hidden * 4, max_position_embeddings=130, pad_token_id=fast.pad_token_id)
    BertModel(config, add_pooling_layer=False).eval().save_pretrained(out)
    return out
