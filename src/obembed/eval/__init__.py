"""Evaluate and compare embedding models on a retrieval set, and map a collection in 2-D.

::

    from obembed.eval import load_dataset, evaluate, format_table
    ds = load_dataset("corpus.jsonl", "queries.jsonl", "qrels.tsv")
    report = evaluate(ds, ["st:all-MiniLM-L6-v2", "st:all-MiniLM-L6-v2?truncate_dim=128"])
    print(format_table(report))
    # search modes through the store: dense vs full-text vs hybrid (weights), reranked
    report = evaluate(ds, ["st:all-MiniLM-L6-v2"], store=StoreOptions(store, modes=["dense", "fulltext",
                      "hybrid:dense=1,fulltext=0.5"], rerank="cross-encoder:./reranker"))

Nothing heavy is imported here: the model loads when :func:`evaluate` runs.
"""

from __future__ import annotations

from .data import Dataset, Document, Query, load_corpus, load_dataset, load_qrels, load_queries
from .metrics import METRICS, bootstrap_ci, mrr_at_k, ndcg_at_k, per_query_metrics, recall_at_k, summarize
from .modes import SearchMode, parse_mode
from .report import format_table, write_html, write_json, write_png
from .runner import StoreOptions, Variant, evaluate, parse_variant
from .search import exact_search

__all__ = [
    "METRICS",
    "Dataset",
    "Document",
    "Query",
    "SearchMode",
    "StoreOptions",
    "Variant",
    "bootstrap_ci",
    "evaluate",
    "exact_search",
    "format_table",
    "load_corpus",
    "load_dataset",
    "load_qrels",
    "load_queries",
    "mrr_at_k",
    "ndcg_at_k",
    "parse_mode",
    "parse_variant",
    "per_query_metrics",
    "recall_at_k",
    "summarize",
    "write_html",
    "write_json",
    "write_png",
]
