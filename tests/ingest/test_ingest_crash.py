"""kill -9 at random points, rerun: the table ends exactly as an uninterrupted run leaves it (ids and hashes).

The crashing runs are real `obembed ingest` subprocesses attached to this session's embedded seekdb; the
writer is slowed by a test hook (OBEMBED_INGEST_WRITE_DELAY) and the batches are small, so the kills land
while rows are being written and stale rows deleted, not only during start-up.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from obembed.ingest import ingest


def corpus_v1(d: Path, put) -> None:
    for i in range(5):
        put(d / f"doc{i}.md", "".join(f"# Doc {i}\n## Part {j}\nText of part {j} of document {i}.\n"
                                      for j in range(4)))
    put(d / "rec.jsonl", "".join(f'{{"id": "r{k}", "text": "record {k} text"}}\n' for k in range(8)))
    put(d / "old.txt", "A file that will be deleted.\n")


def corpus_v2(d: Path, put) -> None:
    put(d / "doc1.md", "# Doc 1\n## Part 0\nRewritten part zero.\n## Part 1\nText of part 1 of document 1.\n")
    put(d / "doc3.md", "# Doc 3\n" + "".join(f"## Part {j}\nNew text {j}.\n" for j in range(6)))
    put(d / "rec.jsonl", "".join(f'{{"id": "r{k}", "text": "record {k} text v2"}}\n' for k in range(0, 8, 2)))
    put(d / "doc4.md", "# Doc 4 again\n" + "".join(f"## Section {j}\nEntirely new section {j}.\n" for j in range(10)))
    put(d / "new.txt", "A new file appears.\n")
    os.remove(d / "old.txt")


def obembed_cmd() -> list[str]:
    script = Path(sys.executable).parent / "obembed"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from obembed.cli import main; main()"]


def test_kill_9_at_random_points_then_rerun_equals_an_uninterrupted_run(tmp_path, put, store, make_collection_name,
                                                                         minilm, store_args):
    rng = random.Random(int(os.environ.get("OBEMBED_TEST_SEED", "0")) or None)
    d = tmp_path / "corpus"
    corpus_v1(d, put)
    ref, crash = make_collection_name("ref"), make_collection_name("crash")
    # both collections start from the same stored v1, then the corpus changes
    for name in (ref, crash):
        ingest(d, collection=name, store=store, provider=minilm)
    corpus_v2(d, put)
    expected_report = ingest(d, collection=ref, store=store, provider=minilm, prune=True)
    assert expected_report.chunks_embedded > 0
    assert expected_report.chunks_deleted > 0
    assert expected_report.rows_pruned == 1
    expected = store.collection(ref).hashes()

    # the subprocesses attach to this session's store: its embedded folder, or OBEMBED_TEST_DSN
    cmd = [*obembed_cmd(), "-v", "ingest", str(d), "--collection", crash, *store_args, "--prune",
           "--batch-size", "3", "--no-progress"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBEMBED_")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OBEMBED_INGEST_WRITE_DELAY="0.3")
    kills = []
    for attempt in range(3):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wrote = threading.Event()

        def watch(p=proc, ev=wrote):
            for line in p.stderr:
                if "ingest: wrote" in line or "ingest: deleted" in line:
                    ev.set()

        threading.Thread(target=watch, daemon=True).start()
        if attempt == 0:
            delay = rng.uniform(0.5, 4.0)  # anywhere, start-up included
            time.sleep(delay)
            point = f"{delay:.2f}s after start"
        else:
            deadline = time.monotonic() + 90
            while not wrote.wait(0.05) and proc.poll() is None and time.monotonic() < deadline:
                pass
            delay = rng.uniform(0.0, 0.8)
            time.sleep(delay)
            point = f"{delay:.2f}s after the first write"
        finished = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills.append((point, "already finished" if finished else "killed", store.collection(crash).count()))
        print(f"kill {attempt}: {kills[-1]}")
    env.pop("OBEMBED_INGEST_WRITE_DELAY")
    done = subprocess.run([*cmd[:-4], "--prune", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = store.collection(crash).hashes()
    assert got == expected, f"kill points: {kills}"
    assert store.collection(crash).count() == len(expected)
    assert any(k[1] == "killed" for k in kills), kills  # at least one run really died mid-way
    # and a rerun of the finished table changes nothing
    again = ingest(d, collection=crash, store=store, provider=minilm, prune=True)
    assert again.chunks_embedded == 0
    assert again.chunks_deleted == 0
    shutil.rmtree(d)
