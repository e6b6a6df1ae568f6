"""Time to the first vector from a fresh Python process through the library: ``obembed.load()`` (the verified
ONNX export of MiniLM once it exists) against ``obembed.load(runtime="torch")``, alternated, median of N.

    python benchmarks/first_vector.py            # 5 rounds
    python benchmarks/first_vector.py --quick    # 3 rounds

Each round starts ``python -c 'import obembed, time; ...'``: the wall time of the whole process (interpreter,
imports, model load, one query vector) and the child's own CPU time, beside the CPU time other processes used
meanwhile (the machine is shared). The export is made once beforehand in a temp cache (not timed).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpuload import Load

CODE = (
    "import time; t0 = time.perf_counter()\n"
    "import obembed\n"
    "p = obembed.load('st:all-MiniLM-L6-v2'{runtime})\n"
    "v = p.embed_query('Which package checks ext4 file systems?')\n"
    "print(p.runtime, round(time.perf_counter() - t0, 3), v.shape[0])\n"
)


def run_once(runtime: str, env: dict[str, str]) -> tuple[float, float, str]:
    code = CODE.format(runtime=", runtime='torch'" if runtime == "torch" else "")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.exit(out.stderr[-2000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout.split()[0]


def cpu_model() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    simd = [f for f in flags if f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni")]
    return f"{name} ({', '.join(simd)}), {os.cpu_count()} cores"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="3 rounds")
    args = ap.parse_args()
    rounds = 3 if args.quick else args.rounds
    with tempfile.TemporaryDirectory(prefix="obembed-first-vector-") as cache:
        env = {**os.environ, "OBEMBED_CACHE_DIR": cache, "OBEMBED_FAST_START": "auto", "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        print(f"CPU: {cpu_model()}; making the export once (not timed) ...", flush=True)
        run_once("auto", env)
        results: dict[str, list[tuple[float, float]]] = {"auto": [], "torch": []}
        runtimes: dict[str, str] = {}
        with Load() as load:
            for _ in range(rounds):
                for mode in ("auto", "torch"):
                    wall, cpu, rt = run_once(mode, env)
                    results[mode].append((wall, cpu))
                    runtimes[mode] = rt
        for mode, label in (("auto", "obembed.load()"), ("torch", "obembed.load(runtime='torch')")):
            walls = [w for w, _ in results[mode]]
            cpus = [c for _, c in results[mode]]
            print(f"{label:32s} runtime={runtimes[mode]:10s} wall median {statistics.median(walls):.2f} s "
                  f"({', '.join(f'{w:.2f}' for w in walls)}), CPU median {statistics.median(cpus):.2f} s")
        ratio = statistics.median(w for w, _ in results["torch"]) / statistics.median(w for w, _ in results["auto"])
        print(f"torch / auto (wall): {ratio:.1f}x; load during the rounds: {load.describe()}")


if __name__ == "__main__":
    main()
