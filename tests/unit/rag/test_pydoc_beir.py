"""The bundled pydoc retrieval set is valid BEIR and its labels point at real answers."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pilothouse.rag.evaluation import load_jsonl, load_qrels, load_queries

DATA = Path(__file__).parents[3] / "benchmarks" / "data" / "pydoc-beir"


def squash(text: str) -> str:
    """Lower-cased, whitespace removed: the HTML parser spaces out code (``json. load ( fp``)."""
    return "".join(text.lower().split())


def test_every_qrel_names_a_known_query_and_document() -> None:
    corpus = load_jsonl(DATA / "corpus.jsonl")
    ids = [str(d["_id"]) for d in corpus]
    assert len(ids) == len(set(ids)), "corpus ids are unique"
    assert all(d["text"].strip() and "title" in d for d in corpus)
    queries = load_queries(DATA / "queries.jsonl")
    assert len(queries) >= 100
    dev, test = load_qrels(DATA / "qrels/dev.tsv"), load_qrels(DATA / "qrels/test.tsv")
    assert not set(dev) & set(test), "a query is judged in one split only"
    assert set(dev) | set(test) == set(queries), "every query is judged"
    known = set(ids)
    for qrels in (dev, test):
        for qid, relevant in qrels.items():
            assert relevant and set(relevant) <= known, (qid, set(relevant) - known)


def test_each_relevant_document_contains_the_answers_evidence() -> None:
    docs = {
        str(d["_id"]): squash(d["title"] + d["text"]) for d in load_jsonl(DATA / "corpus.jsonl")
    }
    rows = load_jsonl(DATA / "queries.jsonl")
    splits = {s: load_qrels(DATA / f"qrels/{s}.tsv") for s in ("dev", "test")}
    judged = splits["dev"] | splits["test"]
    for row in rows:
        meta = row["metadata"]
        assert row["_id"] in splits[meta["split"]], (
            f"{row['_id']} is labelled {meta['split']} but judged elsewhere"
        )
        for doc in judged[row["_id"]]:
            assert any(squash(e) in docs[doc] for e in meta["evidence"]), (row["_id"], doc)
    styles = Counter(r["metadata"]["style"] for r in rows)
    assert styles["question"] and styles["keyword"] and styles["task"]


def test_queries_are_not_copied_from_section_headings() -> None:
    """Paraphrased, not pasted: a query equal to a heading would test string matching."""
    titles = {
        squash(json.loads(line)["title"].split(": ")[-1]) for line in (DATA / "corpus.jsonl").open()
    }
    copied = [q for q in load_queries(DATA / "queries.jsonl").values() if squash(q) in titles]
    assert not copied, copied
