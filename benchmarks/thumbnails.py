"""Memory and time of /thumbnail's rendering for a huge single-colour PNG, 4 requests at once (issue 20, defect 6).

    python benchmarks/thumbnails.py            # 10,900 x 10,900 (118.8 M pixels, inside the 120 M pixel budget)
    python benchmarks/thumbnails.py --quick    # 5,000 x 5,000

Each variant runs in a fresh child process (RSS is per process), interleaved baseline, bounded, baseline, bounded:

* baseline: what the route did before: each request decodes the image in a worker thread (``load_image`` with
  ``max_size=256``, then ``thumbnail``), no cache, no limit (starlette's thread pool runs ~40 at once);
* bounded: the route's :class:`obembed.server.thumbnails.Thumbnails` (reduced decoding, shared render, cache,
  at most 2 renders at once), driven from an event loop as the route drives it.

Printed per variant: RSS before, peak RSS (VmHWM), RSS after, wall time of the 4 concurrent requests, then of 4
more (cache); and the ratios bounded/baseline, plus the CPU time other processes used meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _rss() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0]) / 1024.0  # MiB
    return out


def child(variant: str, path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import PIL.Image  # noqa: F401 - imported before measuring

    from obembed.images import load_image
    from obembed.server.thumbnails import Thumbnails

    def baseline_once() -> bytes:
        import io

        im = load_image(path, max_size=256).image
        im.thumbnail((256, 256))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=80)
        return buf.getvalue()

    start = _rss()
    waves = []
    if variant == "baseline":
        with ThreadPoolExecutor(40) as pool:
            for _ in range(2):
                t0 = time.perf_counter()
                list(pool.map(lambda _: baseline_once(), range(4)))
                waves.append(time.perf_counter() - t0)
    else:
        thumbs = Thumbnails()

        async def run() -> None:
            for _ in range(2):
                t0 = time.perf_counter()
                await asyncio.gather(*(thumbs.get(path, 256) for _ in range(4)))
                waves.append(time.perf_counter() - t0)

        asyncio.run(run())
    end = _rss()
    print(json.dumps({"variant": variant, "rss_before_mib": start["VmRSS"], "peak_mib": end["VmHWM"],
                      "rss_after_mib": end["VmRSS"], "wave1_s": waves[0], "wave2_s": waves[1]}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", nargs=2, metavar=("VARIANT", "PATH"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    import resource

    from _cpuload import Load
    from PIL import Image

    side = 5000 if args.quick else 10900
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.png"
        Image.new("RGB", (side, side), (40, 120, 200)).save(path)
        print(f"{side}x{side} single-colour PNG, {path.stat().st_size / 1024:.0f} KiB; 4 concurrent requests, twice")
        results: dict[str, list[dict[str, float]]] = {"baseline": [], "bounded": []}
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with Load() as load:
            for _ in range(args.rounds):
                for variant in ("baseline", "bounded"):
                    out = subprocess.run([sys.executable, __file__, "--child", variant, str(path)],
                                         capture_output=True, text=True, check=True)
                    row = json.loads(out.stdout.strip().splitlines()[-1])
                    results[variant].append(row)
                    print(f"  {variant:8s} rss {row['rss_before_mib']:.0f} -> peak {row['peak_mib']:.0f} -> "
                          f"after {row['rss_after_mib']:.0f} MiB; 4 requests {row['wave1_s']:.2f} s, "
                          f"4 more {row['wave2_s']:.3f} s")
        for key in ("peak_mib", "rss_after_mib", "wave1_s", "wave2_s"):
            base = min(r[key] for r in results["baseline"])
            new = min(r[key] for r in results["bounded"])
            print(f"{key:14s} baseline {base:9.3f}  bounded {new:9.3f}  ratio {new / base:.3f}")
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        children = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)  # finished children: not in load.ours
        others = max(0.0, load.others - children)
        print(f"wall {load.wall:.1f} s, children {children:.1f} CPU-s, other processes {others:.1f} CPU-s "
              f"({others / max(load.wall, 1e-9):.2f} cores busy elsewhere)")


if __name__ == "__main__":
    main()
