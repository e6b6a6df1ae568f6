"""obembed.ray against real parts: a local Ray runtime, the seekdb server from the pylibseekdb wheel, the bundled
MiniLM. Every Ray table is compared row by row with the table `obembed ingest` (the local pipeline) makes."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import assert_same_table, embed_actor_pids, rows_of

pytestmark = pytest.mark.seekdb

WORDS = ("kernel package library window manager editor terminal network socket file system tiling compositor "
         "font render daemon cache proxy archive backup mirror").split()


JAPANESE = ("カーネル パッケージ ライブラリ ウィンドウ マネージャ エディタ 端末 ネットワーク ファイル "
            "システム フォント 描画 デーモン キャッシュ プロキシ バックアップ ミラー").split()


def make_corpus(folder: Path, n: int = 30, *, japanese: bool = False) -> Path:
    """Records (every third one Japanese with ``japanese=True``), a Markdown and a text file, one broken PDF."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "packages.jsonl").open("w", encoding="utf-8") as f:
        for i in range(n):
            ja = i % 3 == 0
            words = ("".join if ja and japanese else " ".join)(rng.choice(JAPANESE if ja and japanese else WORDS,
                                                                          6 + i % 9))
            f.write(json.dumps({"id": f"pkg{i}", "text": f"{words} ({i})", "lang": "ja" if ja else "en"},
                               ensure_ascii=False) + "\n")
    (folder / "guide.md").write_text("# Guide\n\nInstall the package with the tool.\n\n## Use\n\nRun it daily.\n",
                                     encoding="utf-8")
    (folder / "notes.txt").write_text("A plain note about mirrors and backups.", encoding="utf-8")
    (folder / "broken.pdf").write_bytes(b"this is not a PDF")
    return folder


def local_ingest(paths: list[Path], collection: str, dsn: str) -> dict[str, Any]:
    """`obembed ingest` itself (the CLI command, in process)."""
    from obembed.cli import main

    res = CliRunner().invoke(main, ["ingest", *map(str, paths), "-c", collection, "--dsn", dsn,
                                    "--column", "lang=varchar(8)", "--json", "--no-progress"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report: dict[str, Any] = json.loads(res.output.strip().splitlines()[-1])
    return report


def cli_ingest(args: list[str]) -> Any:
    from obembed.cli import main

    return CliRunner().invoke(main, ["ingest", *args], catch_exceptions=False)


def ray_ingest(paths: list[Path], collection: str, dsn: str, **kwargs: Any) -> Any:
    import obembed.ray

    return obembed.ray.ingest([str(p) for p in paths], collection, dsn=dsn, columns={"lang": "varchar(8)"},
                              **kwargs)


SAME = ("files_seen", "files_changed", "files_failed", "chunks_total", "chunks_embedded", "chunks_skipped",
        "chunks_failed", "chunks_deleted", "records_failed")


@pytest.fixture(scope="module")
def db(seekdb: Any) -> Any:
    import obembed

    store = obembed.connect(seekdb.dsn)
    yield store
    store.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("ray-corpus") / "docs")


@pytest.fixture(scope="module")
def baseline(corpus: Path, seekdb: Any, db: Any) -> dict[str, Any]:
    """The module corpus ingested once by `obembed ingest` into collection ``local``."""
    return local_ingest([corpus], "local", seekdb.dsn)


def test_ray_ingest_equals_local_ingest_and_reruns_embed_only_changes(tmp_path: Path, seekdb: Any, db: Any,
                                                                     ray_runtime: Any) -> None:
    """A Japanese/English corpus without --model: both engines choose the offline multilingual model (one rule),
    make the same table, and a rerun (the collection's own model, no --model) embeds only what changed."""
    from obembed.languages import MULTILINGUAL_MODEL

    docs = make_corpus(tmp_path / "docs", japanese=True)
    want = local_ingest([docs], "inc_local", seekdb.dsn)
    res = cli_ingest([str(docs), "-c", "inc_ray", "--engine", "ray", "--dsn", seekdb.dsn, "--column",
                      "lang=varchar(8)", "--json", "--no-progress"])  # the Ray runtime of this module is reused
    assert res.exit_code == 0, res.output
    assert f"using {MULTILINGUAL_MODEL}" in res.output  # said on stderr
    assert db.collection("inc_ray").spec == db.collection("inc_local").spec == MULTILINGUAL_MODEL
    got = json.loads(res.output.strip().splitlines()[-1])
    assert {k: got[k] for k in SAME} == {k: want[k] for k in SAME}
    assert got["chunks_embedded"] == got["chunks_total"] > 30
    # the bad file is reported by name; the run went on and stored everything else
    assert [f["source"] for f in got["failures"]] == [str(docs / "broken.pdf")]
    assert_same_table(db, "inc_ray", "inc_local")
    coll, local = db.collection("inc_ray"), db.collection("inc_local")
    assert coll.has_index
    assert coll.metadata["index_type"] == local.metadata["index_type"]
    assert coll.metadata["index_params"] == local.metadata["index_params"]
    assert coll.space == local.space

    # change one record, drop one, add a file: the rerun (no model named: the collection's own) embeds exactly
    # those, deletes the dropped row
    lines = (docs / "packages.jsonl").read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[3])
    rec["text"] = "a completely new description of a compositor"
    lines[3] = json.dumps(rec)
    del lines[5]
    (docs / "packages.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (docs / "new.txt").write_text("A new file about fonts.", encoding="utf-8")
    want2 = local_ingest([docs], "inc_local", seekdb.dsn)
    got2 = ray_ingest([docs], "inc_ray", seekdb.dsn)
    assert {k: got2.to_dict()[k] for k in SAME} == {k: want2[k] for k in SAME}
    assert (got2.chunks_embedded, got2.chunks_deleted) == (2, 1)
    assert_same_table(db, "inc_ray", "inc_local")

    # nothing changed: nothing embedded (no Ray job at all), the table unchanged
    got3 = ray_ingest([docs], "inc_ray", seekdb.dsn)
    assert got3.chunks_embedded == 0
    assert got3.chunks_skipped == got3.chunks_total
    assert_same_table(db, "inc_ray", "inc_local")


def test_worker_killed_mid_block_leaves_the_same_table(corpus: Path, baseline: dict[str, Any], seekdb: Any,
                                                       db: Any, ray_runtime: Any, block_marks: Path) -> None:
    """SIGKILL the embedding actor while it holds a block: Ray restarts it and retries the block.

    The actor appends its pid to ``block_marks`` when it starts a block and then holds the block for
    ``block_delay_s``: the killer kills the first actor seen inside a block while the table is still short."""
    import os

    total = baseline["chunks_total"]
    block_marks.write_text("", encoding="utf-8")
    killed: list[tuple[int, int]] = []  # (pid, rows stored when it was killed)
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set():
            marked = {int(p) for p in block_marks.read_text(encoding="utf-8").split()}
            pids = [p for p in embed_actor_pids() if p in marked]
            if pids:  # an actor inside a block (it sleeps block_delay_s before handing it on)
                n = db.collection("killed").count() if db.has_collection("killed") else 0
                if n < total:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append((pids[0], n))
                return
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        report = ray_ingest([corpus], "killed", seekdb.dsn, batch_size=8, block_delay_s=1.5)
    finally:
        stop.set()
        t.join(10)
    assert killed, "the actor was never killed mid-run"
    assert 0 <= killed[0][1] < total
    # a new actor took the blocks over: blocks were started by another pid than the one killed
    assert set(map(int, block_marks.read_text(encoding="utf-8").split())) - {killed[0][0]}
    assert report.chunks_embedded >= baseline["chunks_embedded"]  # a retried block may be written twice
    assert_same_table(db, "killed", "local")


def test_database_restart_mid_write_is_retried(corpus: Path, baseline: dict[str, Any], seekdb: Any, db: Any,
                                               ray_runtime: Any) -> None:
    """Stop the seekdb server while blocks are still being written and start it again: the writes retry with
    backoff and the final table is the local one."""
    total = baseline["chunks_total"]
    restarted: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def restarter() -> None:
        import obembed

        try:
            while not done.is_set():
                watch = obembed.connect(seekdb.dsn)
                try:
                    n = watch.collection("restarted").count() if watch.has_collection("restarted") else 0
                finally:
                    watch.close()
                if 0 < n < total:
                    seekdb.stop(keep=True)
                    restarted.append(n)
                    time.sleep(2)
                    seekdb.start_again()
                    return
                time.sleep(0.3)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=restarter, daemon=True)
    t.start()
    try:
        # two Ray jobs (24 chunks, then the rest): the restart may fall inside a job or between the two
        report = ray_ingest([corpus], "restarted", seekdb.dsn, batch_size=8, block_delay_s=1.0, window=24)
    finally:
        done.set()
        t.join(300)
    assert not errors, errors
    assert restarted, "the server was not restarted"
    assert 0 < restarted[0] < total, "the server was not restarted mid-write"
    assert report.chunks_embedded == baseline["chunks_embedded"]
    assert [f["source"] for f in report.failures] == [str(corpus / "broken.pdf")]
    db.execute("SELECT 1")  # the module's own connection reconnects after the restart
    assert_same_table(db, "restarted", "local")


def test_ray_ingest_refuses_another_model_and_explains_a_cjk_corpus(tmp_path: Path, corpus: Path,
                                                                     baseline: dict[str, Any], seekdb: Any,
                                                                     db: Any) -> None:
    """The local ingest's model rule, before any Ray job: another model than an existing collection's is refused
    naming both; a CJK corpus with auto_model=False is refused with the choice explained. Nothing written."""
    import obembed.ray
    from obembed.errors import ConfigError, DimensionMismatchError
    from obembed.languages import MULTILINGUAL_MODEL

    before = db.collection("local").count()
    with pytest.raises(DimensionMismatchError) as err:
        ray_ingest([corpus], "local", seekdb.dsn, model=MULTILINGUAL_MODEL)
    assert str(db.collection("local").spec) in str(err.value)
    assert MULTILINGUAL_MODEL in str(err.value)
    assert db.collection("local").count() == before
    ja = make_corpus(tmp_path / "ja", japanese=True)
    with pytest.raises(ConfigError, match=f"--model {MULTILINGUAL_MODEL}"):
        obembed.ray.ingest([str(ja)], "ja_refused", dsn=seekdb.dsn, auto_model=False)
    assert not db.has_collection("ja_refused")


def test_write_collection_checks_the_model_before_any_block(seekdb: Any, db: Any, ray_runtime: Any) -> None:
    import ray

    import obembed.ray
    from obembed.errors import ConfigError, DimensionMismatchError

    db.create_collection("eight_d", 8)
    vec = np.ones(384, dtype=np.float32) / np.sqrt(384)
    ds = ray.data.from_items([{"id": f"x{i}", "content": "t", "embedding": vec} for i in range(4)])
    with pytest.raises(DimensionMismatchError, match="eight_d"):
        obembed.ray.write_collection(ds, "eight_d", dsn=seekdb.dsn, model="st:all-MiniLM-L6-v2")
    assert db.collection("eight_d").count() == 0
    db.create_collection("with_sparse", 384, sparse=True)  # its sparse column would stay empty: refused
    with pytest.raises(ConfigError, match=r"sparse vector column.*obembed ingest --sparse"):
        obembed.ray.write_collection(ds, "with_sparse", dsn=seekdb.dsn)
    assert db.collection("with_sparse").count() == 0


def test_embed_and_write_collection_roundtrip(seekdb: Any, db: Any, ray_runtime: Any) -> None:
    """The building blocks on their own: embed() adds MiniLM's vectors, write_collection() creates the collection
    with the model recorded, stores them and builds the index after the load; a second write is a no-op."""
    import ray

    import obembed.ray

    texts = [f"{w} number {i}" for i, w in enumerate(WORDS)]
    items = [{"id": f"w{i}", "text": t, "lang": "en"} for i, t in enumerate(texts)]
    # materialized: the second write below reuses the vectors instead of starting another actor pool
    ds = obembed.ray.embed(ray.data.from_items(items), model="st:all-MiniLM-L6-v2", batch_size=8).materialize()
    stats = obembed.ray.write_collection(ds, "blocks", dsn=seekdb.dsn, model="st:all-MiniLM-L6-v2",
                                         content_column="text", columns={"lang": "varchar(8)"})
    assert (stats.rows_written, stats.created, stats.index) == (len(texts), True, "hnsw")
    rows = {r["id"]: r for r in rows_of(db, "blocks")}
    assert sorted(rows) == sorted(i["id"] for i in items)
    from obembed.ray.embed import load_bulk_provider

    want = load_bulk_provider("st:all-MiniLM-L6-v2").embed_documents(texts)
    for i, t in enumerate(texts):
        assert rows[f"w{i}"]["content"] == t
        assert rows[f"w{i}"]["lang"] == "en"
        assert float(np.dot(rows[f"w{i}"]["vector"], want[i])) > 0.9999
    coll = db.collection("blocks")
    assert coll.space == load_bulk_provider("st:all-MiniLM-L6-v2").space  # the model recorded
    assert coll.has_index
    before = rows_of(db, "blocks")
    again = obembed.ray.write_collection(ds, "blocks", dsn=seekdb.dsn, content_column="text")
    assert (again.created, again.index, again.rows_written) == (False, None, len(texts))
    after = rows_of(db, "blocks")
    assert [(r["id"], r["content"], r["content_hash"]) for r in after] == \
        [(r["id"], r["content"], r["content_hash"]) for r in before]
    np.testing.assert_allclose([r["vector"] for r in after], [r["vector"] for r in before], atol=2e-5)


def test_a_local_ray_started_by_obembed_runs_its_workers_at_normal_priority(ray_runtime: Any) -> None:
    """Ray's default worker niceness (15) starves write tasks behind a busy local engine; ensure_ray's local Ray
    runs them at 0, and leaves the driver's environment as it was."""
    import os

    from obembed.ray.ingest import LOCAL_RAY_ENV

    @ray_runtime.remote(num_cpus=0.1)
    def niceness() -> int:
        return os.nice(0)

    assert ray_runtime.get(niceness.remote()) == 0
    assert all(k not in os.environ for k in LOCAL_RAY_ENV)  # scoped to the start


def test_no_dsn_explains_how_to_start_a_server(tmp_path: Path) -> None:
    import obembed.ray
    from obembed.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        obembed.ray.ingest([str(tmp_path)], "x")
    msg = str(err.value)
    assert "seekdb server or OceanBase" in msg
    assert "--dsn" in msg
    assert "pylibseekdb" in msg  # where the server binary is
    res = cli_ingest([str(tmp_path), "-c", "x", "--engine", "ray", "--json"])
    assert res.exit_code == 1
    assert "seekdb server or OceanBase" in res.output
    res = cli_ingest([str(tmp_path), "-c", "x", "--engine", "ray", "--db", str(tmp_path / "db")])
    assert res.exit_code == 2
    assert "--dsn" in res.output
    assert not (tmp_path / "db").exists()


# ------------------------------------------------------------------ bad rows: the sink's write task, in process
VECTOR_KINDS = ("good", "nan", "inf", "short", "none")
META_KINDS = ("dict", "none", "not json", "a list")


TEXTS = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # Arrow carries no lone surrogates


@given(st.lists(st.tuples(TEXTS, st.sampled_from(VECTOR_KINDS), st.sampled_from(META_KINDS)), min_size=1, max_size=8))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_sink_stores_good_rows_exactly_and_reports_bad_ones(seekdb: Any, db: Any, items: list[Any]) -> None:
    """Any mix of good and bad rows in a block: every good row stored and read back exactly, every bad row
    reported with its id and a reason, nothing else in the table changed."""
    import pyarrow as pa

    from obembed.ray.sink import CollectionSink

    if not db.has_collection("props"):
        db.create_collection("props", 4, index=None)
        db.collection("props").upsert([{"id": "keep", "vector": [1, 0, 0, 0], "content": "kept"}])
    coll = db.collection("props")
    before = coll.get(["keep"], include_vectors=True)
    rng = np.random.default_rng(len(items))
    ids, contents, vectors, metas, bad = [], [], [], [], set()
    for k, (text, vkind, mkind) in enumerate(items):
        rid = f"p{uuid.uuid4().hex[:12]}-{k}"  # fresh ids: every example writes rows never stored before
        v = rng.standard_normal(4).astype(np.float32)
        vec = {"good": v.tolist(), "nan": [*v[:3].tolist(), float("nan")], "inf": [float("inf"), *v[1:].tolist()],
               "short": v[:3].tolist(), "none": None}[vkind]
        meta = {"dict": json.dumps({"k": text}), "none": None, "not json": "{oops", "a list": "[1, 2]"}[mkind]
        ids.append(rid)
        contents.append(text)
        vectors.append(vec)
        metas.append(meta)
        if vkind != "good" or mkind in ("not json", "a list"):
            bad.add(rid)
    block = pa.table({"id": ids, "content": contents, "embedding": pa.array(vectors, type=pa.list_(pa.float32())),
                      "metadata": pa.array(metas, type=pa.string())})
    sink = CollectionSink("props", seekdb.dsn)
    out = sink.write([block], None)
    assert {f["id"] for f in out["failed"]} == bad
    assert all(f["reason"] for f in out["failed"])
    assert out["written"] == len(ids) - len(bad)
    got = {r["id"]: r for r in coll.get(ids, include_vectors=True)}
    assert set(got) == set(ids) - bad
    for rid, text, vec, meta in zip(ids, contents, vectors, metas, strict=True):
        if rid in got:
            assert got[rid]["content"] == text
            assert got[rid]["metadata"] == (json.loads(meta) if meta else {})
            np.testing.assert_allclose(got[rid]["vector"], vec, rtol=1e-5, atol=1e-6)
    after = coll.get(["keep"], include_vectors=True)
    assert [(r["id"], r["content"]) for r in after] == [(r["id"], r["content"]) for r in before]
