"""Retrieval quality on labelled queries: recall@k and mean reciprocal rank.

A labelled query names the passages that answer it by file and innermost
heading (:file:`queries.yaml` beside this module), so the labels survive
edits to the text of the docs. A ranked result is right when its source and
section match one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlfactor.errors import ValidationError
from mlfactor.search.corpus import Passage

DEFAULT_QUERIES = Path(__file__).with_name("queries.yaml")
MRR_DEPTH = 10  # a right answer below rank 10 counts as not found


@dataclass(frozen=True)
class LabelledQuery:
    """A question and the (source file, section) pairs that answer it."""

    query: str
    relevant: frozenset[tuple[str, str]]

    def answers(self, passage: Passage) -> bool:
        """True when ``passage`` is one of the right answers."""
        return (passage.source, passage.section) in self.relevant


@dataclass(frozen=True)
class RetrievalMetrics:
    """recall@k, MRR and the rank of the first right answer per query (None: not in the top 10)."""

    k: int
    recall_at_k: float
    mrr: float
    first_right: tuple[int | None, ...]

    @property
    def top1(self) -> float:
        """Share of queries whose first result is right."""
        return sum(rank == 1 for rank in self.first_right) / max(1, len(self.first_right))


def load_queries(path: Path = DEFAULT_QUERIES) -> list[LabelledQuery]:
    """Read labelled queries from YAML; ValidationError listing every malformed entry."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    problems: list[str] = []
    queries: list[LabelledQuery] = []
    if not isinstance(data, list):
        raise ValidationError(str(path), ["expected a list of {query, relevant} entries"])
    for number, item in enumerate(data, start=1):
        query = item.get("query") if isinstance(item, dict) else None
        relevant = item.get("relevant") if isinstance(item, dict) else None
        pairs = [
            (str(r["source"]), str(r["section"]))
            for r in relevant or []
            if isinstance(r, dict) and "source" in r and "section" in r
        ]
        if not isinstance(query, str) or not query.strip() or not pairs:
            problems.append(
                f"entry {number}: expected a non-empty 'query' and 'relevant' as a list of "
                f"{{source, section}}, got {item!r:.120}"
            )
            continue
        queries.append(LabelledQuery(query, frozenset(pairs)))
    if problems:
        raise ValidationError(str(path), problems)
    return queries


def missing_labels(queries: Sequence[LabelledQuery], passages: Sequence[Passage]) -> list[str]:
    """Labels that name no passage of the corpus (a heading renamed in the docs), as messages."""
    present = {(p.source, p.section) for p in passages}
    return [
        f"query {q.query!r}: no passage in {source} under a heading {section!r}"
        for q in queries
        for source, section in sorted(q.relevant)
        if (source, section) not in present
    ]


def answerable(queries: Sequence[LabelledQuery], passages: Sequence[Passage]) -> list[LabelledQuery]:
    """The queries with at least one right answer among ``passages`` (a smaller corpus answers fewer)."""
    present = {(p.source, p.section) for p in passages}
    return [q for q in queries if q.relevant & present]


def score_rankings(
    queries: Sequence[LabelledQuery], ranked: Sequence[Sequence[Passage]], *, k: int = 5
) -> RetrievalMetrics:
    """recall@k and MRR (to depth 10) of ``ranked[i]``, the results of ``queries[i]`` best first."""
    first: list[int | None] = []
    for query, results in zip(queries, ranked, strict=True):
        rank = next((r for r, p in enumerate(results[:MRR_DEPTH], start=1) if query.answers(p)), None)
        first.append(rank)
    count = max(1, len(first))
    recall = sum(rank is not None and rank <= k for rank in first) / count
    mrr = sum(1.0 / rank for rank in first if rank is not None) / count
    return RetrievalMetrics(k, recall, mrr, tuple(first))
