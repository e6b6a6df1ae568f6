"""In-database back-fill: ``UPDATE t SET embedding = AI_EMBED('<name>', content)`` through ``obembed serve`` vs
``obembed ingest`` of the same texts, same model, one process, phases interleaved per repeat.

usage:
  python benchmarks/in_database.py [--n 2000] [--repeat 2] [--quick]

Answers: "2,000-row back-fill: rows/s of UPDATE ... SET embedding = AI_EMBED(...) vs obembed ingest of the same
texts (ratio)", and whether the engine calls the endpoint once per row or once per batch (the summary's last lines).
``--quick``: the same 2,000 rows, one repeat, the shipped batcher only (no old-wait phase): a few minutes on an
idle 2-core machine.

What runs (embedded seekdb in a temp folder; the server on 127.0.0.1 in a thread of this process, serving the
provider ``obembed.load()`` builds, registered with ``register_model``, checking each request's key against the
store through its own connection as ``obembed serve --register`` does; nothing is written outside the temp folder):
  ingest        : the ingest pipeline (``obembed ingest``'s Ingestor) writes the N texts (a JSONL file) into a
                  collection: embedding in batches + multi-row INSERTs;
  sql adaptive  : a table of the N texts (embedding NULL), then one ``UPDATE ... SET embedding = AI_EMBED(...)``;
                  the server's batcher as shipped (a serial client stops waiting for companions);
  sql wait      : the same with the batcher's old behaviour (every lone request waits --batch-wait-ms for
                  companions), to show what the adaptive wait buys.
Reported: rows/s, the ratio sql/ingest, HTTP requests the engine sent per row, texts per request and texts per
model batch (from the batcher's counters), and the CPU time other processes used meanwhile.
Texts: the first N Debian descriptions cut to 300 characters (one chunk each, so both paths write N rows).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_SUB = Path("shared", "data", "debian-descriptions")
DATA = next((p / _SUB for p in (ROOT, ROOT.parent, ROOT.parent.parent) if (p / _SUB).is_dir()), Path("/work") / _SUB)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpuload import Load  # noqa: E402


def texts(n: int) -> list[tuple[str, str]]:
    out = []
    with gzip.open(DATA / "en_corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            out.append((str(d["id"]), " ".join(d["text"].split())[:300]))
            if len(out) == n:
                break
    return out


@contextmanager
def run_server(app: Any) -> Iterator[str]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def cpu_info() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor()
    model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in out.splitlines() if ln.startswith("Flags")), [])
    keep = [f for f in flags if f.startswith(("avx", "amx")) or "vnni" in f]
    return f"{model}; {' '.join(keep)}; loadavg {os.getloadavg()[0]:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--batch-wait-ms", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true", help="--repeat 1, shipped batcher only (rows: --n, 2000)")
    args = ap.parse_args()
    if args.quick:
        args.repeat = 1

    import obembed
    from obembed.ingest.loaders import LoadOptions
    from obembed.ingest.pipeline import Ingestor
    from obembed.server.app import ServerConfig, create_app

    print(cpu_info())
    rows = texts(args.n)
    provider = obembed.load()
    provider.dimension  # noqa: B018 - load now
    print(f"model {provider.spec} ({provider.runtime}), {len(rows)} texts")
    tmp = Path(tempfile.mkdtemp(prefix="obembed-indb-bench-"))
    src = tmp / "texts.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in rows))
    store = obembed.connect(path=tmp / "kb")
    dim = int(provider.dimension)
    cfg = ServerConfig(batch_wait_ms=args.batch_wait_ms, registered_keys=True)

    def own_store() -> Any:  # the server's own connection, as `obembed serve --db` has
        return obembed.connect(path=tmp / "kb")

    apps = {"sql adaptive": create_app([provider], config=cfg, store_factory=own_store)}
    if not args.quick:
        apps["sql wait"] = create_app([provider], config=cfg, store_factory=own_store)
        apps["sql wait"].state.obembed.models[0].batcher.adaptive_wait = False
    results: dict[str, list[float]] = {"ingest": [], **{k: [] for k in apps}}
    per_row: list[float] = []
    per_request: list[float] = []
    try:
        for rep in range(args.repeat):
            # -- ingest
            name = f"bench_ingest_{rep}"
            coll = store.create_collection(name, provider)
            with Load() as load:
                report = Ingestor(coll, provider, options=LoadOptions()).run([src])
            n = coll.count()
            assert n == len(rows), (n, report.summary())
            results["ingest"].append(n / load.wall)
            print(f"[{rep}] ingest        {n / load.wall:8.1f} rows/s  ({load.describe()})")
            store.drop_collection(name)
            # -- SQL back-fill through the server, both batcher behaviours
            for label, app in apps.items():
                with run_server(app) as url:
                    state = app.state.obembed
                    regs = store.register_model(url + "/v1/embeddings", provider, name="obembed_bench",
                                                served_name=state.models[0].name)
                    assert regs[0].key is not None  # a new key: the server finds it in the store
                    store.execute("DROP TABLE IF EXISTS bf", fetch=False)
                    store.execute("CREATE TABLE bf (id varchar(64) PRIMARY KEY, content text, "
                                  f"embedding VECTOR({dim}))", fetch=False)
                    for i in range(0, len(rows), 500):
                        part = rows[i:i + 500]
                        store.execute("INSERT INTO bf (id, content) VALUES " + ", ".join(["(%s, %s)"] * len(part)),
                                      [x for r in part for x in r], fetch=False)
                    stats0 = dict(state.models[0].batcher.stats)
                    with Load() as load:
                        store.execute("UPDATE bf SET embedding = AI_EMBED('obembed_bench', content)", fetch=False)
                    done = store.execute("SELECT COUNT(*) FROM bf WHERE embedding IS NOT NULL")[0][0][0]
                    assert done == len(rows), done
                    st = {k: v - stats0[k] for k, v in state.models[0].batcher.stats.items()}
                    rate = done / load.wall
                    results[label].append(rate)
                    per_row.append(st["jobs"] / done)
                    per_request.append(st["texts"] / max(st["jobs"], 1))
                    print(f"[{rep}] {label:13s} {rate:8.1f} rows/s  requests/row {st['jobs'] / done:.2f}, "
                          f"texts/request {st['texts'] / max(st['jobs'], 1):.2f}, "
                          f"texts/batch {st['texts'] / max(st['batches'], 1):.2f}  ({load.describe()})")
                    store.drop_ai_models(["obembed_bench"])
        best = {k: max(v) for k, v in results.items()}
        print("\nbest of", args.repeat, {k: round(v, 1) for k, v in best.items()})
        print(f"ratio sql adaptive / ingest: {best['sql adaptive'] / best['ingest']:.3f}")
        if "sql wait" in best:
            print(f"ratio sql wait / ingest:     {best['sql wait'] / best['ingest']:.3f}")
            print(f"adaptive wait speed-up:      {best['sql adaptive'] / best['sql wait']:.2f}x")
        sql, ing = best["sql adaptive"], best["ingest"]
        print(f"\n{len(rows)}-row back-fill: UPDATE ... SET embedding = AI_EMBED(...) {sql:.1f} rows/s, "
              f"obembed ingest {ing:.1f} rows/s, ratio sql/ingest {sql / ing:.3f}")
        how = ("one request per row (one text each)" if max(per_row) >= 0.999 and max(per_request) <= 1.001
               else f"in batches (~{1 / max(min(per_row), 1e-9):.1f} rows per request)")
        print(f"engine requests per row {min(per_row):.2f}..{max(per_row):.2f}, texts per request "
              f"{max(per_request):.2f}: the engine calls the endpoint {how}")
    finally:
        store.execute("DROP TABLE IF EXISTS bf", fetch=False)
        store.close()
        for app in apps.values():
            app.state.obembed.close()


if __name__ == "__main__":
    main()
