"""Before a model migration's swap: compare the collection's current model with the target on the collection's own
rows, with obembed's eval (:func:`obembed.eval.evaluate`: the same metrics, bootstrap intervals, store runs and
table as ``obembed eval``).

::

    report = compare_models(coll, obembed.load("st:all-MiniLM-L6-v2", truncate_dim=128), sample_queries=200)
    print(format_comparison(report))

The corpus is the collection's rows (their stored ``content``; at most ``max_docs``: every judged row plus a seeded
sample of the others). The queries are a queries JSONL file (``{"id", "text", "relevant": [row ids]}``, the format
``obembed eval`` reads) or ``sample_queries`` synthetic ones: for each of N seeded-random rows, a window of its own
words (:func:`sample_queries`), relevant = that row, the way the Debian set pairs a package's one-line summary
with its long description. Both models run through the real store (a temporary collection each, in the same
database as the collection, dropped afterwards), so the table shows recall/MRR/nDCG, latency per query and index
size side by side, plus the paired difference of the target against the current model.

This module sits above the store and eval (it calls both); the store never imports it.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidInputError

if TYPE_CHECKING:
    from .eval.data import Dataset, Document, Query
    from .store.base import QueryModel
    from .store.collection import Collection

__all__ = ["DEFAULT_MAX_DOCS", "compare_models", "comparison_dataset", "format_comparison", "sample_queries"]

log = logging.getLogger(__name__)

DEFAULT_MAX_DOCS = 5000
"""Rows of the collection a comparison encodes at most (both models encode each one)."""
WINDOW = (4, 12)
"""Words in a synthetic query: a third of the row's words, within these bounds."""


def sample_queries(docs: list[Document], n: int, *, seed: int = 0) -> tuple[list[Query], dict[str, dict[str, int]]]:
    """``n`` synthetic queries from the documents' own text: for each of ``n`` seeded-random documents with at least
    :data:`WINDOW`\\[0] words, a window of consecutive words (a third of the document, 4 to 12 words) at a random
    place; its judgement is that document. Returns the queries and their judgements."""
    from .eval.data import Query

    if n < 1:
        raise InvalidInputError(f"sample_queries={n}: give at least 1")
    rng = random.Random(seed)
    usable = [d for d in docs if len(d.text.split()) >= WINDOW[0]]
    if not usable:
        raise InvalidInputError(f"no row has {WINDOW[0]} or more words of content to draw a query from; pass a "
                                "queries file (--compare queries.jsonl) instead")
    picked = rng.sample(usable, min(n, len(usable)))
    queries: list[Query] = []
    qrels: dict[str, dict[str, int]] = {}
    for i, d in enumerate(picked):
        words = d.text.split()
        w = max(WINDOW[0], min(WINDOW[1], len(words) // 3))
        start = rng.randrange(0, len(words) - w + 1)
        qid = f"q{i}"
        queries.append(Query(qid, " ".join(words[start:start + w])))
        qrels[qid] = {d.id: 1}
    return queries, qrels


def _rows(coll: Collection) -> list[Document]:
    from .eval.data import Document

    return [Document(r["id"], r["content"]) for batch in coll.iter_rows(include_vectors=False) for r in batch
            if isinstance(r.get("content"), str) and r["content"].strip()]


def comparison_dataset(coll: Collection, *, queries: str | Path | None = None, n_queries: int | None = None,
                       max_docs: int | None = DEFAULT_MAX_DOCS, seed: int = 0) -> Dataset:
    """The retrieval set of a comparison: the collection's rows (at most ``max_docs``: every judged row plus a
    seeded sample of the others) with the queries of ``queries`` (JSONL with ``relevant`` row ids) or
    ``n_queries`` synthetic ones (:func:`sample_queries`)."""
    from .eval.data import Dataset, load_queries

    if (queries is None) == (n_queries is None):
        raise InvalidInputError("give either a queries file (--compare queries.jsonl) or a number of synthetic "
                                "queries (--sample-queries N), not both or neither")
    docs = _rows(coll)
    if not docs:
        raise InvalidInputError(f"collection {coll.name!r} has no rows with stored content to compare on")
    dropped = 0
    if queries is not None:
        qs, qrels = load_queries(queries)
        if not qrels:
            raise InvalidInputError(f'{queries} has no "relevant" field: give each query the ids of the collection '
                                    'rows it should find, e.g. {"id": "q1", "text": "...", "relevant": ["row-7"]}')
        ids = {d.id for d in docs}
        keep = [q for q in qs if any(g > 0 and r in ids for r, g in qrels.get(q.id, {}).items())]
        if not keep:
            example = next(iter(next(iter(qrels.values()))), "?")
            raise InvalidInputError(f"no query in {queries} names a row of collection {coll.name!r} as relevant "
                                    f"(e.g. {example!r} is not a row id with content); are these its queries?")
        dropped = len(qs) - len(keep)
        if dropped:
            log.warning("%d queries of %s name no row of %s: left out", dropped, queries, coll.name)
        qs, qrels = keep, {q.id: qrels[q.id] for q in keep}
        name = Path(queries).name.split(".")[0]
    else:
        assert n_queries is not None
        qs, qrels = sample_queries(docs, n_queries, seed=seed)
        name = f"{coll.name} (synthetic)"
    if max_docs is not None and len(docs) > max_docs:
        judged = {r for v in qrels.values() for r in v}
        must = [d for d in docs if d.id in judged]
        rest = [d for d in docs if d.id not in judged]
        extra = random.Random(seed).sample(rest, max(0, max_docs - len(must)))
        keep_ids = {d.id for d in must} | {d.id for d in extra}
        docs = [d for d in docs if d.id in keep_ids]
    return Dataset(docs, qs, qrels, name=name, dropped_queries=dropped)


def compare_models(coll: Collection, model: QueryModel, *, queries: str | Path | None = None,
                   sample_queries: int | None = None, max_docs: int | None = DEFAULT_MAX_DOCS, seed: int = 0,
                   current: QueryModel | None = None, n_resamples: int = 1000,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluate the collection's current model (``current``, default ``coll.model``) and ``model`` on the
    collection's own rows; returns the eval report (:func:`obembed.eval.evaluate`), the current model first, with
    ``report["comparison"]`` naming the collection and both models. Each model also runs through the store: a
    temporary collection with the collection's index type, in the same database, dropped afterwards."""
    from .eval.runner import StoreOptions, Variant, evaluate

    old = current or coll.model
    dataset = comparison_dataset(coll, queries=queries, n_queries=sample_queries, max_docs=max_docs, seed=seed)
    same_spec = old.spec == model.spec
    labels = [f"{p.spec} ({int(p.dimension)}-d)" if same_spec else p.spec for p in (old, model)]
    labels = [f"{labels[0]}: answers now", f"{labels[1]}: migration target"]
    by_key = {"current": old, "target": model}
    variants = [Variant(label=labels[0], spec="current", shown=str(old.spec)),
                Variant(label=labels[1], spec="target", shown=str(model.spec))]
    index = str(coll.metadata.get("index_type") or "hnsw").lower()
    tag = hashlib.sha1(coll.name.encode()).hexdigest()[:10]
    opts = StoreOptions(store=coll.store, indexes=(index,), prefix=f"migcmp_{tag}")
    report = evaluate(dataset, variants, store=opts, provider_factory=lambda key, **_: by_key[key],
                      n_resamples=n_resamples, seed=seed, progress=progress)
    report["comparison"] = {"collection": coll.name, "current": old.spec, "target": model.spec,
                            "current_dimension": int(old.dimension), "target_dimension": int(model.dimension),
                            "queries": "synthetic" if queries is None else str(queries), "seed": seed}
    return report


def format_comparison(report: dict[str, Any]) -> str:
    """The eval table of a comparison, with a line saying what was compared."""
    from .eval.report import format_table

    c = report.get("comparison") or {}
    head = (f"collection {c.get('collection')}: {c.get('current')} ({c.get('current_dimension')}-d, answers now) "
            f"vs {c.get('target')} ({c.get('target_dimension')}-d), queries: {c.get('queries')}")
    return head + "\n\n" + format_table(report)
