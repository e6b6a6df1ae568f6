"""Fixtures of the fast-path tests: real Debian texts, the torch reference, one ONNX export per session."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

_ROOT = Path(__file__).resolve().parents[2]
# the workplace's shared folder sits beside the checkout (/work/main) or further up (a worktree under /work/wt)
_SHARED = next((p / "shared" for p in _ROOT.parents if (p / "shared" / "data").is_dir()), _ROOT.parent / "shared")
CORPUS = _SHARED / "data" / "debian-descriptions" / "en_corpus.jsonl.gz"


def _corpus_texts(n: int) -> list[str]:
    if CORPUS.exists():
        out = []
        with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
            for line in f:
                out.append(json.loads(line)["text"])
                if len(out) >= n:
                    break
        return out
    # the shared data folder is not part of a clean clone: real package descriptions, inline
    return [
        "0 A.D. is a free, open-source, cross-platform real-time strategy game of ancient warfare.",
        "This package contains the GNU C library, the standard C library used by the system.",
        "Utilities to create, check, label and resize ext2, ext3 and ext4 file systems.",
        "A fast, scalable, distributed revision control system with an emphasis on speed.",
        "Python bindings for the libxml2 and libxslt libraries, for parsing XML and HTML.",
        "Command-line tool for transferring data with URL syntax, supporting HTTP, FTP and more.",
    ] * (n // 6 + 1)


@pytest.fixture(scope="session")
def texts() -> list[str]:
    """28 real package descriptions (9 to ~200 tokens), plus one over 128 tokens and one over 256."""
    base = _corpus_texts(28)[:28]
    over128 = " ".join(base[:3])[:900]  # 129..256 tokens: the shipped tokenizer.json would cut it at 128
    over256 = " ".join(base[:12])  # longer than MiniLM's 256: truncated and counted
    return [*base, over128, over256]


@pytest.fixture(scope="session")
def reference(minilm, texts) -> np.ndarray:
    """Plain ``SentenceTransformer.encode()`` of the texts: the torch reference every path must match."""
    return np.asarray(minilm.st_model.encode(texts, convert_to_numpy=True, show_progress_bar=False), np.float32)


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def onnx_fp32(onnx_cache):
    from obembed.providers.onnx import OnnxProvider

    return OnnxProvider("all-MiniLM-L6-v2", cache_dir=str(onnx_cache)).load()


@pytest.fixture(scope="session")
def onnx_int8(onnx_cache, onnx_fp32):
    from obembed.providers.onnx import OnnxProvider

    return OnnxProvider("all-MiniLM-L6-v2", precision="int8", cache_dir=str(onnx_cache)).load()


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


# one embedding run per path and session; the tests below read these results
@pytest.fixture(scope="session")
def st_result(minilm, texts):
    return minilm.embed(texts)


@pytest.fixture(scope="session")
def onnx_result(onnx_fp32, texts):
    return onnx_fp32.embed(texts)


@pytest.fixture(scope="session")
def int8_result(onnx_int8, texts):
    return onnx_int8.embed(texts)


@pytest.fixture(scope="session")
def hf():
    import obembed

    return obembed.load("hf:all-MiniLM-L6-v2", device="cpu")


@pytest.fixture(scope="session")
def hf_result(hf, texts):
    return hf.embed(texts)
