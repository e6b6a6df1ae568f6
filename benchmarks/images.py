"""Image loading: obembed.images.load_image (JPEG draft + shrink) against the naive ``Image.open().convert("RGB")``.

    python benchmarks/images.py            # 8000x8000 JPEG + 6 photos of 4000x3000, median of 3
    python benchmarks/images.py --quick    # 6000x6000 + 3 photos
    python benchmarks/images.py --decode-workers   # + embed_images_result with 1/2/4 decode threads

Each measurement runs in a fresh Python process (so peak RSS is that of one load), three times; the median
wall time and the peak-RSS growth are printed, with the obembed/naive ratios. The CPU that *other* processes
used meanwhile (/proc/stat minus this process and its children) is recorded, in cores, since the machine is
shared. The naive path is what the guide's snippet does (``Image.open(path)`` handed to the CLIP processor);
both paths end with the processor's first step (shorter side resized to 224, bicubic), so the figures are
those of the image side of an embedding run minus the model.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")

# VmHWM (this process's own peak RSS): ru_maxrss would carry the parent's peak into the child across fork+exec
CHILD = r"""
import sys, time
def hwm():
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024
mode, paths = sys.argv[1], sys.argv[2:]
from PIL import Image
from obembed.images import load_image
base = hwm()
t = time.perf_counter()
for p in paths:
    if mode == "obembed":
        img = load_image(p).image
    else:
        with Image.open(p) as im:
            img = im.convert("RGB")
    # what CLIPImageProcessor does next: shorter side to 224, bicubic
    w, h = img.size
    small = img.resize((max(1, round(w * 224 / min(w, h))), max(1, round(h * 224 / min(w, h)))),
                       Image.Resampling.BICUBIC)
    small.close()
    img.close()
wall = time.perf_counter() - t
print(wall, hwm() - base)
"""


def _busy_seconds() -> float:
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / TICK


def _own_seconds() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def run(mode: str, paths: list[Path], repeats: int) -> tuple[float, float, float]:
    """(median wall s, median peak-RSS growth MB, other processes' load in cores)."""
    walls, rss = [], []
    busy0, own0, t0 = _busy_seconds(), _own_seconds(), time.monotonic()
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", CHILD, mode, *map(str, paths)], capture_output=True, text=True,
                             check=True, timeout=600)
        w, r = map(float, out.stdout.split())
        walls.append(w)
        rss.append(r)
    elapsed = time.monotonic() - t0
    other = max(0.0, (_busy_seconds() - busy0) - (_own_seconds() - own0)) / elapsed
    return statistics.median(walls), statistics.median(rss), other


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller images (6000 px, 3 photos)")
    ap.add_argument("--side", type=int, default=None, help="side of the big square JPEG (default 8000)")
    ap.add_argument("--photos", type=int, default=None, help="number of 4000x3000 JPEGs (default 6)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--decode-workers", action="store_true",
                    help="also time ClipProvider.embed_images_result with 1, 2, 4 decode threads (tiny CLIP)")
    args = ap.parse_args()
    side = args.side or (6000 if args.quick else 8000)
    n_photos = args.photos or (3 if args.quick else 6)

    import numpy as np
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="obembed-bench-images-") as tmp:
        folder = Path(tmp)
        big = folder / "big.jpg"
        grad = Image.linear_gradient("L").resize((side, side)).convert("RGB")
        grad.save(big, quality=85)
        del grad
        rng = np.random.default_rng(0)
        photos = []
        base = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).resize((4000, 3000))
        for i in range(n_photos):
            p = folder / f"photo{i}.jpg"
            base.rotate(i * 7).save(p, quality=85)
            photos.append(p)
        del base
        print(f"images: one {side}x{side} JPEG ({big.stat().st_size / 1e6:.1f} MB), {n_photos} photos 4000x3000; "
              f"median of {args.repeats} fresh processes; python {sys.version.split()[0]}")
        print(f"{'case':<34}{'wall s':>9}{'peak RSS MB':>13}{'other load':>12}")
        results = {}
        for label, paths in (("big", [big]), ("photos", photos)):
            for mode in ("naive", "obembed"):
                w, r, o = run(mode, paths, args.repeats)
                results[(label, mode)] = (w, r)
                print(f"{label + ' / ' + mode:<34}{w:>9.3f}{r:>13.0f}{o:>11.2f}c")
        for label in ("big", "photos"):
            (wn, rn), (wo, ro) = results[(label, "naive")], results[(label, "obembed")]
            print(f"{label}: obembed is {wn / wo:.1f}x faster, peak RSS {rn / max(ro, 1):.1f}x smaller "
                  f"({rn:.0f} → {ro:.0f} MB)")
        if args.decode_workers:
            decode_workers(folder, photos, args.repeats)


def decode_workers(folder: Path, photos: list[Path], repeats: int) -> None:
    """ClipProvider.embed_images_result with 1 decode thread vs more, on a tiny random CLIP (so the figure is the
    image side: decoding in threads, ahead of the model; a real CLIP's inference would overlap with it too)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

    import obembed

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2}
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    torch.manual_seed(0)
    cfg = CLIPConfig(text_config={"vocab_size": 3, "hidden_size": 32, "intermediate_size": 37,
                                  "num_hidden_layers": 1, "num_attention_heads": 4, "eos_token_id": 1,
                                  "bos_token_id": 0, "pad_token_id": 1},
                     vision_config={"image_size": 224, "patch_size": 32, "hidden_size": 32, "intermediate_size": 37,
                                    "num_hidden_layers": 1, "num_attention_heads": 4}, projection_dim=16)
    model_dir = folder / "tiny-clip"
    CLIPModel(cfg).save_pretrained(model_dir)
    CLIPProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=tok).save_pretrained(model_dir)
    items = photos * max(1, 12 // len(photos))
    print(f"\nembed_images_result on {len(items)} photos 4000x3000, tiny CLIP (224 px processor), batch 4, "
          f"torch threads {torch.get_num_threads()}")
    base = None
    for workers in (1, 2, 4):
        p = obembed.load(f"clip:{model_dir}", device="cpu", decode_workers=workers, batch_size=4)
        p.embed_images(items[:1])  # load
        walls = []
        busy0, own0, t0 = _busy_seconds(), _own_seconds(), time.monotonic()
        for _ in range(repeats):
            t = time.perf_counter()
            res = p.embed_images_result(items)
            walls.append(time.perf_counter() - t)
            assert len(res) == len(items)
        other = max(0.0, (_busy_seconds() - busy0) - (_own_seconds() - own0)) / (time.monotonic() - t0)
        w = statistics.median(walls)
        base = base or w
        print(f"decode_workers={workers}: {w:.2f} s ({len(items) / w:.1f} images/s), {base / w:.2f}x vs 1 thread, "
              f"other load {other:.2f} cores")


if __name__ == "__main__":
    main()
