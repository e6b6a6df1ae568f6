"""Cold start of a search from a fresh process on an existing embedded store: the engine's start against attaching
to a warm engine (``obembed engine start``), interleaved in the same run.

    python benchmarks/cold_start.py [--rounds 3] [--quick]

Per round, each case runs as a fresh process (``python -c``): ``store`` = import obembed.store, open the folder,
one vector search (the engine's part alone); ``cli`` = ``obembed search TEXT --json`` (imports, the query model,
the engine, the search). Cases: ``cold`` (no engine running for the folder) and ``warm`` (a keeper holds it).
Prints medians (wall and the process's own CPU time), the warm/cold ratio and the CPU time other processes used
meanwhile. Goal (issue 12): ``cli warm`` (``obembed search`` from a fresh process, engine warm) <= 1.5 s.

    python benchmarks/cold_start.py --quick      # 2 rounds (cold starts are slow: ~2 min idle)
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _cpuload import Load

STORE_PROBE = """
import sys, time
t0 = time.perf_counter()
from obembed.store import connect
t1 = time.perf_counter()
s = connect(sys.argv[1])
t2 = time.perf_counter()
s.collection("docs").search([1.0] + [0.0] * 383, 3)
t3 = time.perf_counter()
s.close()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {t3 - t2:.3f}")
"""


def _cpu() -> str:
    flags = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        fl = next(line for line in info.splitlines() if line.startswith("flags")).split()
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in fl)
    except (OSError, StopIteration):
        model = platform.processor()
    return f"{model} [{flags}] x{os.cpu_count()}"


def _build(folder: Path) -> None:
    code = (
        "import sys, obembed\n"
        "m = obembed.load('st:all-MiniLM-L6-v2', device='cpu')\n"
        "texts = [f'package {i}: a tool for task {i}' for i in range(200)] + ['a tiling window manager']\n"
        "with obembed.connect(sys.argv[1]) as s:\n"
        "    c = s.create_collection('docs', m)\n"
        "    c.upsert([{'id': str(i), 'vector': v, 'content': t}\n"
        "              for i, (t, v) in enumerate(zip(texts, m.embed_documents(texts)))])\n")
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True)


def _engine(*args: str) -> None:
    subprocess.run([sys.executable, "-c", "from obembed.cli import main; main()", "engine", *args], check=True,
                   stdout=subprocess.DEVNULL)


GOAL_S = 1.5
CPU: dict[str, list[float]] = {}


def _run(cmd: list[str], name: str = "") -> tuple[float, str]:
    """Run ``cmd``; its wall time and stdout (its own CPU time goes to ``CPU[name]``; a keeper it starts is not
    its child, so the engine's CPU is not in it)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if name:
        CPU.setdefault(name, []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="two rounds")
    args = ap.parse_args()
    rounds = 2 if args.quick else args.rounds
    with tempfile.TemporaryDirectory(prefix="obembed-coldstart-") as tmp:
        folder = Path(tmp) / "kb"
        _build(folder)
        # the CLI's query model: the fast path's ONNX export is made once, here, not inside the timings
        subprocess.run([sys.executable, "-c", "from obembed.cli import main; main()", "search", "warm up", "-c",
                        "docs", "--db", str(folder), "--json"], check=True, stdout=subprocess.DEVNULL)
        times: dict[str, list[float]] = {}
        phases: dict[str, list[list[float]]] = {"cold": [], "warm": []}
        with Load() as load:
            for _ in range(rounds):
                for case in ("cold", "warm"):
                    if case == "warm":
                        _engine("start", "--db", str(folder), "--idle", "120")
                    wall, out = _run([sys.executable, "-c", STORE_PROBE, str(folder)], f"store {case}")
                    times.setdefault(f"store {case}", []).append(wall)
                    phases[case].append([float(x) for x in out.split()])
                    wall, _ = _run([sys.executable, "-c", "from obembed.cli import main; main()", "search",
                                    "window manager", "-c", "docs", "--db", str(folder), "--json"], f"cli {case}")
                    times.setdefault(f"cli {case}", []).append(wall)
                    if case == "warm":
                        _engine("stop", "--db", str(folder))
        print(f"cpu: {_cpu()}; rounds: {rounds}; other processes used {load.others_cores:.2f} cores on average "
              f"(load avg {os.getloadavg()[0]:.1f})")
        for name, vals in times.items():
            print(f"{name:<11} median {statistics.median(vals):6.2f} s   ({', '.join(f'{v:.2f}' for v in vals)}); "
                  f"CPU median {statistics.median(CPU[name]):.2f} s")
        for case, rows in phases.items():
            med = [statistics.median(col) for col in zip(*rows, strict=True)]
            print(f"store {case} phases (median): import {med[0]:.2f} s, open {med[1]:.2f} s, search {med[2]:.3f} s")
        for what in ("store", "cli"):
            ratio = statistics.median(times[f"{what} warm"]) / statistics.median(times[f"{what} cold"])
            print(f"{what}: warm / cold = {ratio:.2f}")
        wall, cpu = statistics.median(times["cli warm"]), statistics.median(CPU["cli warm"])
        print(f"goal: obembed search from a fresh process, engine warm, <= {GOAL_S} s: wall {wall:.2f} s, "
              f"CPU {cpu:.2f} s -> {'met' if wall <= GOAL_S else 'NOT met'} (wall)")


if __name__ == "__main__":
    main()
