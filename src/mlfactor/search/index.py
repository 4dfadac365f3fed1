"""Exact nearest passages: a brute-force inner product over unit embeddings.

With a few hundred passages an exact search costs well under a millisecond
per query, so there is no approximate index to tune and nothing to lose in
quality: this *is* the physical limit the benchmark compares against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlfactor.search.corpus import Passage


@dataclass(frozen=True)
class Hit:
    """One ranked passage for one query."""

    rank: int  # 1 for the best
    index: int  # position in the corpus
    score: float  # cosine similarity, -1 to 1

    def describe(self, passage: Passage) -> dict[str, object]:
        """The hit as a search result: rank, score, source file, heading and text."""
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "source": passage.source,
            "heading": passage.heading,
            "text": passage.text,
        }


@dataclass(frozen=True)
class PassageIndex:
    """Passages and their unit embeddings (row ``i`` embeds ``passages[i]``)."""

    passages: Sequence[Passage]
    vectors: np.ndarray  # float32 (passages, dimensions), rows of norm 1

    def __post_init__(self) -> None:
        if len(self.passages) != len(self.vectors):
            raise ValueError(
                f"the index has {len(self.passages)} passages but {len(self.vectors)} embeddings; "
                "embed exactly the passages you index"
            )

    def search(self, queries: np.ndarray, ks: Sequence[int]) -> list[list[Hit]]:
        """The ``ks[i]`` best passages of query row ``i``, best first (ties by corpus order)."""
        scores = queries @ self.vectors.T
        found: list[list[Hit]] = []
        for row, wanted in zip(scores, ks, strict=True):
            k = max(0, min(int(wanted), len(row)))
            if k == 0:
                found.append([])
                continue
            best = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
            order = best[np.lexsort((best, -row[best]))]
            found.append([Hit(rank, int(i), float(row[i])) for rank, i in enumerate(order, start=1)])
        return found
