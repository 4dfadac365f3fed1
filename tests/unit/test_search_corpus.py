"""The docs-search corpus, exact index and retrieval metrics, on small real inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlfactor.errors import ValidationError
from mlfactor.search.corpus import Passage, load_corpus, split_markdown
from mlfactor.search.evaluate import (
    DEFAULT_QUERIES,
    LabelledQuery,
    answerable,
    load_queries,
    missing_labels,
    score_rankings,
)
from mlfactor.search.index import PassageIndex

PROJECT_DIR = Path(__file__).resolve().parents[2]

DOC = """# Guide

Intro paragraph.

## Install

Run make.

```bash
# not a heading
make install
```

### Offline

No hub is reached.

## Serve

Serve it.
"""


def test_passages_carry_file_and_heading_path_and_ignore_hashes_in_code() -> None:
    """Each heading's text is a passage named by its heading path; '# ...' inside a fence is text."""
    passages = split_markdown(DOC, "docs/guide.md")
    headings = [p.heading for p in passages]
    assert headings == ["Guide", "Guide > Install", "Guide > Install > Offline", "Guide > Serve"]
    install = passages[1]
    assert "# not a heading" in install.text and install.section == "Install"
    assert all(p.source == "docs/guide.md" for p in passages)
    assert install.embedding_text().startswith("Guide > Install\n")


def test_long_sections_are_cut_at_the_word_limit() -> None:
    """A section longer than max_words becomes several passages, none longer than the limit."""
    text = "# Long\n\n" + "\n\n".join(" ".join(["word"] * 30) for _ in range(10))
    passages = split_markdown(text, "README.md", max_words=70)
    assert len(passages) == 5
    assert all(len(p.text.split()) <= 70 for p in passages)
    assert sum(len(p.text.split()) for p in passages) == 300


def test_the_project_corpus_is_readme_and_docs() -> None:
    """The default corpus holds passages of README.md and of every docs/*.md file."""
    passages = load_corpus(PROJECT_DIR)
    sources = {p.source for p in passages}
    assert "README.md" in sources and {s for s in sources if s.startswith("docs/")}
    assert all(p.text.strip() for p in passages)


def test_an_empty_corpus_is_an_error_naming_the_patterns(tmp_path: Path) -> None:
    """A folder without the files names the patterns and how to fix it."""
    with pytest.raises(ValidationError, match=r"README\.md, docs/\*\.md"):
        load_corpus(tmp_path)


def test_exact_search_ranks_by_cosine_and_honours_k() -> None:
    """Best first, ties in corpus order, k per query, k above the corpus size gives every passage."""
    passages = [Passage("a.md", "A", "x"), Passage("b.md", "B", "y"), Passage("c.md", "C", "z")]
    vectors = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    index = PassageIndex(passages, vectors)
    hits = index.search(np.array([[0, 1], [1, 0]], dtype=np.float32), [2, 9])
    assert [(h.rank, h.index) for h in hits[0]] == [(1, 1), (2, 2)]
    assert [h.index for h in hits[1]] == [0, 2, 1]
    assert hits[0][0].describe(passages[1]) == {
        "rank": 1,
        "score": 1.0,
        "source": "b.md",
        "heading": "B",
        "text": "y",
    }


def test_index_refuses_mismatched_embeddings() -> None:
    """Two passages with three embeddings is an error saying what to fix."""
    with pytest.raises(ValueError, match="2 passages but 3 embeddings"):
        PassageIndex([Passage("a", "A", "x")] * 2, np.zeros((3, 2), np.float32))


def test_recall_and_mrr_count_the_first_right_answer() -> None:
    """Right at rank 1 and 3, and not found: recall@1 1/3, recall@5 2/3, MRR (1 + 1/3) / 3."""
    right = Passage("d.md", "T > Right", "r")
    wrong = Passage("d.md", "T > Wrong", "w")
    query = LabelledQuery("q", frozenset({("d.md", "Right")}))
    ranked = [[right, wrong], [wrong, wrong, right], [wrong]]
    five = score_rankings([query] * 3, ranked, k=5)
    one = score_rankings([query] * 3, ranked, k=1)
    assert five.first_right == (1, 3, None)
    assert five.recall_at_k == pytest.approx(2 / 3) and one.recall_at_k == pytest.approx(1 / 3)
    assert five.mrr == pytest.approx((1 + 1 / 3) / 3) and five.top1 == pytest.approx(1 / 3)


def test_the_labelled_queries_name_passages_of_the_docs() -> None:
    """Every label in queries.yaml names a heading the project's docs have (renaming one fails here)."""
    queries = load_queries(DEFAULT_QUERIES)
    passages = load_corpus(PROJECT_DIR)
    assert len(queries) >= 20
    assert missing_labels(queries, passages) == []
    assert answerable(queries, passages) == queries


def test_malformed_query_files_list_every_bad_entry(tmp_path: Path) -> None:
    """Entries without a query or without relevant passages are all reported at once."""
    path = tmp_path / "queries.yaml"
    path.write_text(
        "- {query: ok, relevant: [{source: a.md, section: A}]}\n- {query: ''}\n- {relevant: []}\n"
    )
    with pytest.raises(ValidationError) as caught:
        load_queries(path)
    assert [p.split(":")[0] for p in caught.value.problems] == ["entry 2", "entry 3"]
