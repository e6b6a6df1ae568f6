"""The pipeline on the real embedded seekdb with the real MiniLM: bad inputs, incremental reruns, policies."""

from __future__ import annotations

import os

import numpy as np
import pytest

from obembed.errors import ConfigError
from obembed.ingest import chunk_id, ingest


def stored(store, name: str) -> dict[str, str]:
    return store.collection(name).hashes()


def test_tree_with_every_bad_input_goes_on_and_stores_the_good(tmp_path, put, store, collection_name, counting):
    d = tmp_path / "docs"
    put(d / "guide.md", "# Guide\nIntro.\n## Install\nRun pip install obembed.\n")
    put(d / "notes.txt", "Plain notes about vector search.\n")
    put(d / "latin1.txt", "café crème\n".encode("latin-1"))
    put(d / "records.jsonl", '{"id": "r1", "text": "OceanBase is a database.", "lang": "en", "year": 2021}\n'
                             "{broken\n"
                             '{"id": "r2", "text": "日本語のデータベースの説明。", "lang": "ja", "year": 2023}\n')
    put(d / "table.csv", "title,body\nx,y\n")
    put(d / "fake.txt", b"\x00\x01binary\x00" * 50)
    put(d / "empty.md", "")
    with open(d / "huge.txt", "wb") as f:
        f.truncate(50 * 1024 * 1024)
    os.symlink(d, d / "loop")
    rep = ingest([d, tmp_path / "missing"], collection=collection_name, store=store, provider=counting,
                 columns={"lang": "varchar(8)", "year": "int"})
    reasons = {(os.path.basename(f["source"]), f.get("line")): f["reason"] for f in rep.failures}
    assert reasons[("records.jsonl", 2)].startswith("line 2 is not JSON")
    assert reasons[("table.csv", None)].startswith("CSV has no column 'text'")
    assert "binary content" in reasons[("fake.txt", None)]
    assert reasons[("empty.md", None)] == "empty file (0 bytes)"
    assert "over the 20 MiB limit" in reasons[("huge.txt", None)]
    assert "symlink loop" in reasons[("loop", None)]
    assert "does not exist" in reasons[("missing", None)]
    assert len(rep.failures) == 7
    assert any("invalid UTF-8" in n["message"] for n in rep.notices)
    # the good parts are stored: guide (2 sections), notes, latin1, 2 records
    coll = store.collection(collection_name)
    assert rep.chunks_embedded == coll.count() == 6
    assert rep.files_seen == 8
    by_source = {os.path.basename(s): n for s, n in coll.sources().items()}
    assert by_source == {"guide.md": 2, "notes.txt": 1, "latin1.txt": 1, "records.jsonl": 2}
    # declared columns are typed columns, the rest metadata; filters work on both
    hits = coll.search(counting.embed_query("database"), k=5, where="lang = 'ja' AND year >= 2020")
    assert [h.metadata["id"] for h in hits] == ["r2"]
    assert hits[0].columns == {"lang": "ja", "year": 2023}
    rows = coll.get([chunk_id(str(d / "guide.md"), "", 1)])
    assert rows[0]["content"] == "Guide > Install\nRun pip install obembed."
    assert rows[0]["metadata"] == {"heading": "Guide > Install"}


def test_incremental_rerun_embeds_exactly_the_changed_chunks(tmp_path, put, store, collection_name, counting):
    d = tmp_path / "kb"
    put(d / "a.md", "# A\n## One\nfirst section text.\n## Two\nsecond section text.\n## Three\nthird section.\n")
    put(d / "b.txt", "File b talks about cats.\n")
    put(d / "c.jsonl", '{"id": "c1", "text": "record one"}\n{"id": "c2", "text": "record two"}\n')
    put(d / "gone.txt", "This file will be deleted.\n")
    first = ingest(d, collection=collection_name, store=store, provider=counting)
    assert first.chunks_embedded == 7
    assert first.chunks_skipped == 0
    assert len(counting.calls) == 1  # one large batch, not one call per file
    before = stored(store, collection_name)

    counting.reset()
    again = ingest(d, collection=collection_name, store=store, provider=counting)
    assert counting.calls == []  # nothing embedded again
    assert again.chunks_skipped == 7
    assert again.chunks_embedded == 0
    assert again.files_changed == 0
    assert stored(store, collection_name) == before

    # edit one section of a.md: exactly that chunk is re-embedded
    put(d / "a.md", "# A\n## One\nfirst section text.\n## Two\nsecond section, edited.\n## Three\nthird section.\n")
    counting.reset()
    rep = ingest(d, collection=collection_name, store=store, provider=counting)
    assert counting.texts == ["A > Two\nsecond section, edited."]
    assert rep.chunks_embedded == 1
    assert rep.chunks_skipped == 6
    assert rep.files_changed == 1
    after = stored(store, collection_name)
    assert set(after) == set(before)
    changed = {i for i in after if after[i] != before[i]}
    assert changed == {chunk_id(str(d / "a.md"), "", 1)}

    # a record removed and one changed in c.jsonl; b.txt loses nothing; its stale row is deleted
    put(d / "c.jsonl", '{"id": "c2", "text": "record two, changed"}\n')
    os.remove(d / "gone.txt")
    counting.reset()
    rep = ingest(d, collection=collection_name, store=store, provider=counting)
    assert counting.texts == ["record two, changed"]
    assert rep.chunks_deleted == 1  # c1's row
    coll = store.collection(collection_name)
    assert chunk_id(str(d / "c.jsonl"), "c1", 0) not in coll.hashes()
    assert str(d / "gone.txt") in coll.sources()  # deleted file: kept without --prune
    rep = ingest(d, collection=collection_name, store=store, provider=counting, prune=True)
    assert rep.sources_pruned == 1
    assert rep.rows_pruned == 1
    assert str(d / "gone.txt") not in store.collection(collection_name).sources()
    assert store.collection(collection_name).count() == 5


def test_a_file_that_turns_bad_keeps_its_rows(tmp_path, put, store, collection_name, counting):
    p = put(tmp_path / "t.jsonl", '{"id": "a", "text": "alpha"}\n{"id": "b", "text": "beta"}\n')
    ingest(p, collection=collection_name, store=store, provider=counting)
    put(p, '{"id": "a", "text": "alpha"}\n{oops\n')  # b's line is now broken
    rep = ingest(p, collection=collection_name, store=store, provider=counting)
    assert rep.records_failed == 1
    assert rep.chunks_deleted == 0
    assert store.collection(collection_name).count() == 2  # nothing stored is lost because of bad input
    assert any("kept" in n["message"] for n in rep.notices)


def test_long_input_policies_are_counted(tmp_path, put, store, make_collection_name, counting):
    long_text = " ".join(f"Sentence {i} about embeddings and vector databases." for i in range(120))
    p = put(tmp_path / "long.jsonl", f'{{"id": "long", "text": "{long_text}"}}\n{{"id": "short", "text": "hi"}}\n')
    n_tokens = counting.count_tokens([long_text])[0]
    assert n_tokens > 256

    rep = ingest(p, collection=make_collection_name("trunc"), store=store, provider=counting, truncate="truncate")
    assert (rep.chunks_embedded, rep.chunks_truncated, rep.failures) == (2, 1, [])

    rep = ingest(p, collection=make_collection_name("err"), store=store, provider=counting, truncate="error")
    assert rep.chunks_embedded == 1
    assert rep.records_failed == 1
    assert f"record long has {n_tokens} tokens, more than the model's limit of 256" in rep.failures[0]["reason"]

    name = make_collection_name("chunk")
    rep = ingest(p, collection=name, store=store, provider=counting, truncate="chunk", overlap=16)
    assert rep.chunks_truncated == 0
    assert rep.chunks_embedded >= 4
    rows = [r for b in store.collection(name).iter_rows(include_vectors=False) for r in b]
    assert max(counting.count_tokens([r["content"] for r in rows])) <= 256
    assert sorted(r["chunk"] for r in rows if r["metadata"]["id"] == "long") == list(range(rep.chunks_embedded - 1))


def test_large_batches_reach_the_model_and_vectors_match(tmp_path, put, store, collection_name, counting):
    lines = "".join(f'{{"id": "{i}", "text": "item number {i}"}}\n' for i in range(300))
    p = put(tmp_path / "many.jsonl", lines)
    rep = ingest(p, collection=collection_name, store=store, provider=counting, batch_size=256)
    assert rep.chunks_embedded == 300
    assert [len(c) for c in counting.calls] == [256, 44]
    row = store.collection(collection_name).get([chunk_id(str(p), "7", 0)], include_vectors=True)[0]
    ref = counting.embed_documents(["item number 7"])[0]
    assert np.allclose(row["vector"], ref, atol=1e-5)


def test_declared_column_must_exist_on_an_existing_collection(tmp_path, put, store, collection_name, counting):
    p = put(tmp_path / "a.txt", "text")
    ingest(p, collection=collection_name, store=store, provider=counting)
    with pytest.raises(ConfigError, match="has no column"):
        ingest(p, collection=collection_name, store=store, provider=counting, columns={"lang": "varchar(8)"})


def test_a_file_named_twice_is_ingested_once(tmp_path, put, store, collection_name, counting):
    d = tmp_path / "twice"
    f = put(d / "a.txt", "only once")
    rep = ingest([d, f, str(f)], collection=collection_name, store=store, provider=counting)
    assert rep.files_seen == 1
    assert rep.chunks_embedded == 1
    assert counting.texts == ["only once"]


def test_the_truncate_policy_leaves_counting_to_the_model(tmp_path, put, store, make_collection_name, counting,
                                                          monkeypatch):
    """``truncate``: the model cuts and reports the cut, so the pipeline does not tokenize each document a second
    time (one tokenizer call per document on the producer thread, beside the model); ``error`` must count."""
    from obembed.ingest import pipeline

    calls: list[int] = []
    real = pipeline.make_token_counter

    def spy(provider):
        count = real(provider)

        def wrapped(texts):
            calls.append(len(texts))
            return count(texts)

        return wrapped

    monkeypatch.setattr(pipeline, "make_token_counter", spy)
    long_text = " ".join(f"Sentence {i} about embeddings and vector databases." for i in range(120))
    p = put(tmp_path / "r.jsonl", f'{{"id": "long", "text": "{long_text}"}}\n{{"id": "a", "text": "alpha"}}\n'
                                  '{"id": "b", "text": "beta"}\n')
    more = put(tmp_path / "more.jsonl", "".join(f'{{"id": "m{i}", "text": "more {i}"}}\n' for i in range(6)))
    rep = ingest(p, collection=make_collection_name("t"), store=store, provider=counting, truncate="truncate")
    assert (rep.chunks_embedded, rep.chunks_truncated) == (3, 1)
    per_run = len(calls)  # the chunker's one probe of the special tokens, whatever the documents
    assert per_run <= 1
    calls.clear()
    rep = ingest(more, collection=make_collection_name("t"), store=store, provider=counting, truncate="truncate")
    assert (rep.chunks_embedded, len(calls)) == (6, per_run)  # twice the documents, no more counting
    calls.clear()
    rep = ingest(p, collection=make_collection_name("e"), store=store, provider=counting, truncate="error")
    assert (rep.chunks_embedded, rep.records_failed) == (2, 1)
    assert len(calls) == per_run + 3  # error: every document is counted against the limit


def test_a_batch_is_embedded_in_slices_longest_first_and_written_slice_by_slice(tmp_path, put, store,
                                                                                make_collection_name, counting):
    """The writer stores one slice while the model embeds the next: the first rows are written before the
    model's last call for the batch, the last slice holds the shortest texts, and the table is the same as
    one call per batch makes (ids, vectors, stale-row cleanup)."""
    from obembed.ingest.loaders import LoadOptions
    from obembed.ingest.pipeline import Ingestor, open_collection

    texts = [("word " * (i + 1)).strip() for i in range(10)]
    p = put(tmp_path / "s.jsonl", "".join(f'{{"id": "{i}", "text": "{t}"}}\n' for i, t in enumerate(texts)))
    sliced, whole = make_collection_name("sliced"), make_collection_name("whole")
    events: list[tuple[str, int]] = []
    inner_embed = counting.embed

    def embed(items, **kwargs):
        items = list(items)
        events.append(("embed", len(items)))
        return inner_embed(items, **kwargs)

    counting.embed = embed
    coll = open_collection(store, sliced, counting)
    inner_upsert = coll.upsert

    def upsert(rows, *args, **kwargs):
        events.append(("write", len(rows)))
        return inner_upsert(rows, *args, **kwargs)

    coll.upsert = upsert
    rep = Ingestor(coll, counting, options=LoadOptions(), policy="truncate", batch_size=10, write_every=4).run([p])
    assert rep.chunks_embedded == 10
    assert [len(c) for c in counting.calls] == [4, 4, 2]
    assert counting.calls[0] == texts[:5:-1]
    assert counting.calls[-1] == texts[1::-1]
    assert events.index(("write", 4)) < len(events) - 1 - events[::-1].index(("embed", 2))  # overlap
    assert sorted(n for e, n in events if e == "write") == [2, 4, 4]

    counting.calls.clear()
    ingest(p, collection=whole, store=store, provider=counting, truncate="truncate", batch_size=10)
    ids = [chunk_id(str(p), str(i), 0) for i in range(10)]
    a = {r["id"]: r["vector"] for r in store.collection(sliced).get(ids, include_vectors=True)}
    b = {r["id"]: r["vector"] for r in store.collection(whole).get(ids, include_vectors=True)}
    assert a.keys() == b.keys() == set(ids)
    assert all(np.allclose(a[i], b[i], atol=1e-5) for i in a)
    # a changed file: its stale rows go after its new rows are written, in slices too
    put(tmp_path / "s.jsonl", "".join(f'{{"id": "{i}", "text": "{t} again"}}\n' for i, t in enumerate(texts[:3])))
    coll = store.collection(sliced, provider=counting)
    rep = Ingestor(coll, counting, options=LoadOptions(), policy="truncate", batch_size=10, write_every=2).run([p])
    assert (rep.chunks_embedded, rep.chunks_deleted, coll.count()) == (3, 7, 3)
    with pytest.raises(ConfigError, match="write_every=0"):
        Ingestor(coll, counting, write_every=0)
