"""Retrieval sets: BEIR-style files and the simpler "queries carry ``relevant``" form.

* corpus JSONL: one object per line, ``{"id" (or "_id"), "text", "title"?}``; a title is prepended
  to the text (``title + ". " + text``) unless ``use_title=False``;
* queries JSONL: ``{"id" (or "_id"), "text"}``, optionally ``"relevant": [doc ids]`` (graded:
  ``{"doc": 2}``) — the form of ``shared/data/debian-descriptions``;
* qrels TSV: ``query-id <TAB> corpus-id <TAB> score`` with or without a header line (BEIR's
  ``qrels/test.tsv``); whitespace-separated TREC lines ``qid 0 docid score`` are read too.

Any of them may be gzip-compressed (``.gz``). A bad line raises :class:`~obembed.errors.InvalidInputError`
naming the file, the line number and the fix.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import InvalidInputError

__all__ = ["Dataset", "Document", "Query", "load_corpus", "load_dataset", "load_qrels", "load_queries"]

log = logging.getLogger(__name__)

Qrels = dict[str, dict[str, int]]
"""query id -> {document id -> graded relevance (> 0 relevant)}."""


@dataclass(frozen=True)
class Document:
    id: str
    text: str


@dataclass(frozen=True)
class Query:
    id: str
    text: str


@dataclass
class Dataset:
    """A corpus, its queries and the graded judgements (only queries with a relevant document are kept)."""

    corpus: list[Document]
    queries: list[Query]
    qrels: Qrels
    name: str = ""
    dropped_queries: int = 0
    """Queries without any relevant document in the qrels (left out, as BEIR does)."""
    missing_docs: int = field(default=0)
    """Judged documents that are not in the corpus (they can never be found; they still count as relevant)."""

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "documents": len(self.corpus), "queries": len(self.queries),
                "judgements": sum(len(v) for v in self.qrels.values()),
                "dropped_queries": self.dropped_queries, "missing_docs": self.missing_docs}


def _open_text(path: Path) -> IO[str]:
    if not path.is_file():
        raise InvalidInputError(f"{path} does not exist or is not a file; check the path")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with _open_text(path) as f:
        try:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidInputError(
                        f"{path} line {n} is not JSON ({exc.msg}); each line must be one JSON object"
                    ) from exc
                if not isinstance(obj, dict):
                    raise InvalidInputError(f"{path} line {n} is a JSON {type(obj).__name__}, not an object "
                                            '{"id": ..., "text": ...}')
                yield n, obj
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{path} could not be read ({exc}); is it UTF-8 (gzip for .gz)?") from exc


def _id_of(obj: dict[str, Any], path: Path, n: int) -> str:
    raw = obj.get("id", obj.get("_id"))
    if raw is None or (isinstance(raw, str) and not raw.strip()) or isinstance(raw, dict | list | bool):
        raise InvalidInputError(f'{path} line {n} has no usable "id" (or "_id"); give every line a string id')
    return str(raw)


def load_corpus(path: str | Path, *, use_title: bool = True) -> list[Document]:
    """Read corpus JSONL (``id``/``_id``, ``text``, optional ``title``); ids must be unique."""
    path = Path(path)
    docs: list[Document] = []
    seen: dict[str, int] = {}
    for n, obj in _jsonl(path):
        did = _id_of(obj, path, n)
        text = obj.get("text")
        title = obj.get("title") if use_title else None
        if text is not None and not isinstance(text, str):
            raise InvalidInputError(f'{path} line {n} (id {did!r}): "text" is a {type(text).__name__}, not a string')
        if title is not None and not isinstance(title, str):
            raise InvalidInputError(f'{path} line {n} (id {did!r}): "title" is not a string')
        text = (text or "").strip()
        if title and title.strip():
            text = f"{title.strip()}. {text}" if text else title.strip()
        if not text:
            raise InvalidInputError(f'{path} line {n} (id {did!r}) has an empty "text"; drop the line or fill it')
        if did in seen:
            raise InvalidInputError(f"{path} line {n}: id {did!r} was already used on line {seen[did]}; "
                                    "document ids must be unique")
        seen[did] = n
        docs.append(Document(did, text))
    if not docs:
        raise InvalidInputError(f"{path} holds no documents")
    return docs


def _relevant(value: Any, path: Path, n: int) -> dict[str, int]:
    if isinstance(value, str):
        return {value: 1}
    if isinstance(value, list):
        if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
            raise InvalidInputError(f'{path} line {n}: "relevant" must list document ids (strings)')
        return {str(v): 1 for v in value}
    if isinstance(value, dict):
        out: dict[str, int] = {}
        for k, v in value.items():
            if not isinstance(v, int | float) or isinstance(v, bool):
                raise InvalidInputError(f'{path} line {n}: "relevant" grade for {k!r} must be a number')
            out[str(k)] = int(v)
        return out
    raise InvalidInputError(f'{path} line {n}: "relevant" must be a list of ids or an object {{id: grade}}')


def load_queries(path: str | Path) -> tuple[list[Query], Qrels]:
    """Read queries JSONL; returns the queries and the judgements carried in ``relevant`` (may be empty)."""
    path = Path(path)
    queries: list[Query] = []
    qrels: Qrels = {}
    seen: set[str] = set()
    for n, obj in _jsonl(path):
        qid = _id_of(obj, path, n)
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f'{path} line {n} (id {qid!r}) has no non-empty "text"; drop the line or fill it')
        if qid in seen:
            raise InvalidInputError(f"{path} line {n}: query id {qid!r} is used twice; ids must be unique")
        seen.add(qid)
        queries.append(Query(qid, text.strip()))
        if "relevant" in obj:
            qrels[qid] = _relevant(obj["relevant"], path, n)
    if not queries:
        raise InvalidInputError(f"{path} holds no queries")
    return queries, qrels


def load_qrels(path: str | Path) -> Qrels:
    """Read a qrels TSV: ``query-id corpus-id score`` (header optional) or TREC ``qid 0 docid score``."""
    path = Path(path)
    qrels: Qrels = {}
    with _open_text(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) == 1:
                parts = line.split()
            parts = [p.strip() for p in parts]
            if len(parts) == 4:  # TREC: qid iter docid rel
                parts = [parts[0], parts[2], parts[3]]
            if len(parts) != 3:
                raise InvalidInputError(f"{path} line {n} has {len(parts)} fields; expected "
                                        "'query-id<TAB>corpus-id<TAB>score'")
            qid, did, score = parts
            try:
                grade = int(float(score))
            except ValueError:
                if n == 1 or not qrels:  # a header such as "query-id corpus-id score"
                    continue
                raise InvalidInputError(f"{path} line {n}: score {score!r} is not a number; "
                                        "expected 'query-id<TAB>corpus-id<TAB>score'") from None
            if not qid or not did:
                raise InvalidInputError(f"{path} line {n} has an empty query or corpus id")
            qrels.setdefault(qid, {})[did] = grade
    if not qrels:
        raise InvalidInputError(f"{path} holds no judgements (query-id<TAB>corpus-id<TAB>score lines)")
    return qrels


def load_dataset(corpus: str | Path, queries: str | Path, qrels: str | Path | None = None, *,
                 use_title: bool = True, name: str = "") -> Dataset:
    """Load a retrieval set; judgements from ``qrels`` when given, else from the queries' ``relevant``."""
    docs = load_corpus(corpus, use_title=use_title)
    qs, carried = load_queries(queries)
    judged = load_qrels(qrels) if qrels is not None else carried
    if not judged:
        raise InvalidInputError(f"no judgements: {queries} has no \"relevant\" field; pass --qrels FILE")
    by_query = {q.id for q in qs}
    unknown = [qid for qid in judged if qid not in by_query]
    if unknown and len(unknown) == len(judged):
        raise InvalidInputError(f"no judged query id appears in {queries} (e.g. {unknown[0]!r}); "
                                "do the qrels belong to these queries?")
    doc_ids = {d.id for d in docs}
    keep = [q for q in qs if any(g > 0 for g in judged.get(q.id, {}).values())]
    qrels_kept = {q.id: judged[q.id] for q in keep}
    missing = sum(1 for v in qrels_kept.values() for d, g in v.items() if g > 0 and d not in doc_ids)
    if missing:
        log.warning("%d relevant documents are not in the corpus %s: they can never be retrieved", missing, corpus)
    stem = Path(queries).name.split(".")[0]
    if stem in ("queries", "test", "dev", "train"):  # BEIR layout: name the set after its folder
        stem = Path(queries).resolve().parent.name or stem
    return Dataset(docs, keep, qrels_kept, name=name or stem,
                   dropped_queries=len(qs) - len(keep), missing_docs=missing)
