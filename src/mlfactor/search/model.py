"""The ``docs-search`` model: an MLflow pyfunc that ranks the project's passages for a question.

Its artifacts hold everything it needs: the exported encoder
(``encoder.onnx``), the tokenizer, the passages and their unit embeddings.
Serving needs onnxruntime, tokenizers and numpy only, never torch.
Input: a ``query`` string column and an optional ``k`` (results per query,
:data:`DEFAULT_K` when absent). Output, per row: ``results``, the ``k`` best
passages, best first, each with rank, score, source file, heading and text;
and ``query_length`` and ``embedding_norm``, which prediction events carry and
``mlfactor monitor drift`` compares with the training profile.

The MLmodel metadata tells the service two more things under ``mlfactor``:
``batching`` (each row is answered on its own, so concurrent requests may be
embedded together, :mod:`mlfactor.serving.batching`) and ``constraints``
(limits of string lengths and numbers that the service checks as 400s,
:mod:`mlfactor.serving.schema`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from mlfactor.search.corpus import Passage
from mlfactor.search.encoder import Embeddings, OnnxEncoder
from mlfactor.search.index import PassageIndex

DEFAULT_K = 5
MAX_K = 50
MAX_QUERY_CHARS = 1000  # the encoder reads at most 256 word pieces: about 1000 characters of English
ARTIFACT_ENCODER = "encoder"
ARTIFACT_TOKENIZER = "tokenizer"
ARTIFACT_PASSAGES = "passages"
ARTIFACT_EMBEDDINGS = "embeddings"
SERVING_PACKAGES = ("onnxruntime", "tokenizers", "numpy", "pandas", "pyyaml")


def search_metadata(*, max_batch_size: int = 64, max_latency_ms: float = 5.0) -> dict[str, Any]:
    """The MLmodel metadata the service reads: batching policy and input constraints."""
    return {
        "mlfactor": {
            "batching": {"max_batch_size": max_batch_size, "max_latency_ms": max_latency_ms},
            "constraints": {
                "query": {"min_length": 1, "max_length": MAX_QUERY_CHARS},
                "k": {"minimum": 1, "maximum": MAX_K},
            },
        }
    }


def _k_values(model_input: pd.DataFrame) -> list[int]:
    """``k`` of every row: the given value, or DEFAULT_K where the column is absent or empty."""
    if "k" not in model_input:
        return [DEFAULT_K] * len(model_input)
    values = []
    for value in model_input["k"].tolist():
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        values.append(DEFAULT_K if missing else min(max(int(value), 1), MAX_K))
    return values


class DocsSearchModel(PythonModel):
    """Ranks passages by cosine similarity to each query (exact search over unit embeddings)."""

    def load_context(self, context: Any) -> None:
        """Load the encoder, the passages and their embeddings from the model's artifacts."""
        artifacts = context.artifacts
        self.encoder = OnnxEncoder(Path(artifacts[ARTIFACT_ENCODER]), Path(artifacts[ARTIFACT_TOKENIZER]))
        raw = json.loads(Path(artifacts[ARTIFACT_PASSAGES]).read_text(encoding="utf-8"))
        passages = [Passage.from_dict(item) for item in raw]
        vectors = np.load(artifacts[ARTIFACT_EMBEDDINGS]).astype(np.float32)
        self.index = PassageIndex(passages, vectors)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Per row of ``model_input``: its best passages and the features drift is checked on."""
        queries = [str(q) for q in model_input["query"].tolist()]
        embedded = self.encoder.encode(queries)
        hits = self.index.search(embedded.vectors, _k_values(model_input))
        passages = self.index.passages
        features = query_features(queries, embedded)
        return [
            {"results": [hit.describe(passages[hit.index]) for hit in row], **features[i]}
            for i, row in enumerate(hits)
        ]


def query_features(queries: Sequence[str], embedded: Embeddings) -> list[dict[str, float]]:
    """What ``mlfactor monitor drift`` checks per query: its length and its embedding's norm.

    The length is in characters; the norm is the mean-pooled vector's before normalising, which
    moves for queries unlike the corpus's language or topics.
    """
    return [
        {"query_length": len(query), "embedding_norm": round(float(norm), 4)}
        for query, norm in zip(queries, embedded.norms, strict=True)
    ]


def query_profile_frame(queries: Sequence[str], encoder: OnnxEncoder) -> pd.DataFrame:
    """The training profile's frame: :func:`query_features` of the queries the model expects."""
    return pd.DataFrame(query_features(queries, encoder.encode(queries)))


def pip_requirements() -> list[str]:
    """Pinned requirements of the served model, from the installed versions (no torch)."""
    pins = [f"{name}=={metadata.version(name)}" for name in SERVING_PACKAGES]
    return [*pins, f"mlflow=={mlflow.__version__}"]


def write_artifacts(
    folder: Path, passages: Sequence[Passage], vectors: np.ndarray, encoder: Path, tokenizer: Path
) -> dict[str, str]:
    """Write the passages and embeddings into ``folder``; return the artifact map for log_model."""
    folder.mkdir(parents=True, exist_ok=True)
    passages_path = folder / "passages.json"
    passages_path.write_text(json.dumps([p.to_dict() for p in passages]), encoding="utf-8")
    embeddings_path = folder / "embeddings.npy"
    np.save(embeddings_path, np.asarray(vectors, dtype=np.float32))
    return {
        ARTIFACT_ENCODER: str(encoder),
        ARTIFACT_TOKENIZER: str(tokenizer),
        ARTIFACT_PASSAGES: str(passages_path),
        ARTIFACT_EMBEDDINGS: str(embeddings_path),
    }
