#!/usr/bin/env python3
"""Rebuild this sample from ../shared/data/debian-descriptions (Debian 12 Translation-en / Translation-ja).

usage: python examples/debian-sample/make_sample.py [DATA_DIR]
Writes packages-en.jsonl (150 English long descriptions) and packages-ja.jsonl (100 Japanese ones, of
packages that are also in the English file, so cross-lingual searches have an answer). Seeded: the same
data gives the same sample.
"""

import gzip
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data" / "debian-descriptions"
KNOWN = ["vim", "git", "emacs", "firefox-esr", "gimp-help-ja", "inkscape", "nginx", "ruby", "perl", "bash",
         "python3-numpy", "sqlite3", "postgresql-common", "openssh-client", "curl", "tmux", "gnupg", "zsh"]


def load(name: str) -> list[dict]:
    with gzip.open(DATA / name, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def main() -> None:
    en = {d["id"]: d["text"] for d in load("en_corpus.jsonl.gz")}
    ja = {d["id"]: d["text"] for d in load("ja_corpus.jsonl.gz")}
    ok = lambda t: 80 <= len(t) <= 900  # noqa: E731 - readable lengths for a demo
    both = sorted(p for p in ja if p in en and ok(en[p]) and ok(ja[p]))
    rng = random.Random(2026)
    picked = [p for p in KNOWN if p in both]
    picked += rng.sample([p for p in both if p not in picked], 100 - len(picked))
    extra = rng.sample(sorted(p for p in en if p not in ja and ok(en[p])), 50)
    with open(HERE / "packages-en.jsonl", "w", encoding="utf-8") as f:
        for p in sorted(picked + extra):
            f.write(json.dumps({"id": p, "package": p, "lang": "en", "text": en[p]}, ensure_ascii=False) + "\n")
    with open(HERE / "packages-ja.jsonl", "w", encoding="utf-8") as f:
        for p in sorted(picked):
            f.write(json.dumps({"id": p, "package": p, "lang": "ja", "text": ja[p]}, ensure_ascii=False) + "\n")
    print(f"{len(picked) + len(extra)} English, {len(picked)} Japanese descriptions")


if __name__ == "__main__":
    main()
