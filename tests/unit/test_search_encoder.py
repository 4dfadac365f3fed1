"""The torch-free encoder's pooling and the export check that guards it (1e-4 in cosine)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from mlfactor.search.encoder import Embeddings, mean_pool
from mlfactor.search.export import MAX_COSINE_GAP, check_export, cosine_gap


def test_mean_pool_ignores_padding_and_normalises() -> None:
    """Padded positions (mask 0) do not count; rows come out of length 1 with their norm before."""
    hidden = np.array([[[3.0, 4.0], [100.0, 100.0]], [[1.0, 0.0], [3.0, 0.0]]], dtype=np.float32)
    mask = np.array([[1, 0], [1, 1]])
    pooled = mean_pool(hidden, mask)
    np.testing.assert_allclose(pooled.vectors, [[0.6, 0.8], [1.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(pooled.norms, [5.0, 2.0], atol=1e-6)


class FixedEncoder:
    """Encodes every text to the same unit vector (a stand-in for either side of the check)."""

    def __init__(self, vector: list[float]) -> None:
        self.vector = np.asarray(vector, dtype=np.float32) / np.linalg.norm(vector)

    def encode(self, texts: Sequence[str]) -> Embeddings:
        """The fixed vector for each text."""
        vectors = np.tile(self.vector, (len(texts), 1))
        return Embeddings(vectors, np.ones(len(texts), np.float32))


def test_an_export_within_the_gap_passes_and_reports_it() -> None:
    """Identical embeddings give a gap of 0; a 0.5 degree rotation (3.8e-5) is still within 1e-4."""
    texts = ["a", "b"]
    assert check_export(FixedEncoder([1, 0]), FixedEncoder([1, 0]), texts) == 0.0
    angle = np.radians(0.5)
    gap = check_export(FixedEncoder([1, 0]), FixedEncoder([np.cos(angle), np.sin(angle)]), texts)
    assert 0 < gap <= MAX_COSINE_GAP


def test_an_export_beyond_the_gap_is_refused_with_the_figures() -> None:
    """A 2 degree rotation (6.1e-4) fails, naming the gap, the limit and what to do."""
    angle = np.radians(2)
    with pytest.raises(
        ValueError,
        match=r"differs from torch by up to 6\.\d+e-04 in cosine on 2 texts; expected at most 0\.0001",
    ):
        check_export(FixedEncoder([1, 0]), FixedEncoder([np.cos(angle), np.sin(angle)]), ["a", "b"])


def test_cosine_gap_of_nothing_is_zero() -> None:
    """No texts, no gap."""
    empty = Embeddings(np.zeros((0, 2), np.float32), np.zeros(0, np.float32))
    assert cosine_gap(empty, empty) == 0.0
