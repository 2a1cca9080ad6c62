"""Tokenizers: train WordPiece/Unigram, extend a checkpoint's vocabulary, compare tokenizers."""
