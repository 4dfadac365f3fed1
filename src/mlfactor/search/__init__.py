"""Semantic search over the project's documentation: a second model family on the same contract.

The corpus (:mod:`~mlfactor.search.corpus`), the torch-free encoder
(:mod:`~mlfactor.search.encoder`), the exact index
(:mod:`~mlfactor.search.index`), retrieval metrics
(:mod:`~mlfactor.search.evaluate`) and the ``docs-search`` pyfunc
(:mod:`~mlfactor.search.model`, :mod:`~mlfactor.search.logging_model`).
Torch is needed only to export the encoder (:mod:`~mlfactor.search.export`),
which is why that module is not imported here.
"""

from mlfactor.search.corpus import Passage, load_corpus, split_markdown
from mlfactor.search.evaluate import LabelledQuery, RetrievalMetrics, load_queries, score_rankings
from mlfactor.search.index import Hit, PassageIndex

__all__ = [
    "Hit",
    "LabelledQuery",
    "Passage",
    "PassageIndex",
    "RetrievalMetrics",
    "load_corpus",
    "load_queries",
    "score_rankings",
    "split_markdown",
]
