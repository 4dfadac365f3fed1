"""Sentence embeddings without torch: the exported encoder run by onnxruntime, text cut by tokenizers.

:class:`OnnxEncoder` reproduces what sentence-transformers' all-MiniLM-L6-v2
computes (word pieces, the transformer, mean pooling over real tokens, L2
normalisation) from two files the training step writes: ``encoder.onnx`` and
``tokenizer.json``. The served model needs only ``onnxruntime``,
``tokenizers`` and numpy; torch is needed only to export the encoder
(:mod:`mlfactor.search.export`). Nothing is ever fetched from a hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"


@dataclass(frozen=True)
class Embeddings:
    """Unit vectors of a batch of texts, with the norms they had before normalising (for drift)."""

    vectors: np.ndarray  # float32, shape (texts, dimensions), each row of norm 1
    norms: np.ndarray  # float32, shape (texts,): the mean-pooled vector's norm


class TextEncoder(Protocol):
    """Anything that embeds texts as unit vectors (the ONNX encoder, the torch reference)."""

    def encode(self, texts: Sequence[str]) -> Embeddings:
        """Unit embeddings of ``texts``."""
        ...


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> Embeddings:
    """Average the token vectors of real tokens (mask 1) and normalise each row to length 1."""
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1)
    vectors = pooled / np.clip(norms, 1e-12, None)[:, None]
    return Embeddings(vectors.astype(np.float32), norms.astype(np.float32))


class OnnxEncoder:
    """Embeds texts with an exported transformer; thread-safe (onnxruntime sessions are)."""

    def __init__(self, model_path: Path, tokenizer_path: Path, *, max_tokens: int = MAX_TOKENS) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.enable_padding()
        self.tokenizer = tokenizer
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's concern
        self.session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.model_path = model_path

    def encode(self, texts: Sequence[str]) -> Embeddings:
        """Unit embeddings of ``texts`` in one run of the encoder (an empty list gives no rows)."""
        if not texts:
            return Embeddings(np.zeros((0, 0), np.float32), np.zeros(0, np.float32))
        encoded = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(ids),
        }
        hidden = self.session.run([OUTPUT_NAME], feeds)[0]
        return mean_pool(np.asarray(hidden, dtype=np.float32), mask)
