"""The export cache and the runtime choice of ``obembed.load`` (torch or the verified ONNX export)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import obembed
from obembed.errors import ConfigError, ModelNotFoundError
from obembed.loader import choose_runtime
from obembed.providers import _local
from obembed.providers.onnx import OnnxProvider, model_key
from obembed.providers.onnx import export as export_mod
from obembed.settings import Settings

from .conftest import cosines


@pytest.fixture
def cached_env(monkeypatch: pytest.MonkeyPatch, onnx_cache: Path, onnx_fp32) -> Path:
    """OBEMBED_CACHE_DIR pointing at the session's export (made by the onnx_fp32 fixture)."""
    from obembed.settings import get_settings

    monkeypatch.setenv("OBEMBED_CACHE_DIR", str(onnx_cache))
    monkeypatch.setenv("OBEMBED_FAST_START", "auto")
    get_settings.cache_clear()
    return onnx_cache


def load_provider(spec: str, options: tuple[str, ...] = (), **kw):
    """``obembed.load`` with ``k=v`` options, as the CLI passes them."""
    from obembed.cli._common import option_pairs

    return obembed.load(spec, **option_pairs(options), **kw)


def test_export_recorded_with_its_verification(onnx_fp32, onnx_cache) -> None:
    manifests = list((onnx_cache / "onnx").glob("*/manifest.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    check = manifest["files"]["fp32"]["verified"]
    assert check["min_cosine"] >= 0.9999
    assert check["reference"] == "sentence-transformers"
    assert check["n_probe"] >= 10
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert onnx_fp32.verification == check


def test_second_load_reuses_the_export(onnx_fp32, onnx_cache, monkeypatch: pytest.MonkeyPatch, texts) -> None:
    model_file = next((onnx_cache / "onnx").glob("*/model.onnx"))
    mtime = model_file.stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(export_mod, "_export", no_export)
    monkeypatch.setattr(export_mod, "_TorchReference", no_export)
    again = OnnxProvider("all-MiniLM-L6-v2", cache_dir=str(onnx_cache)).load()
    assert model_file.stat().st_mtime_ns == mtime
    assert cosines(again.embed_documents(texts[:3]), onnx_fp32.embed_documents(texts[:3])).min() >= 0.99999
    # export=False never makes one
    empty = OnnxProvider("all-MiniLM-L6-v2", cache_dir=str(onnx_cache / "elsewhere"), export=False)
    with pytest.raises(ModelNotFoundError, match="no cached ONNX export"):
        empty.load()


def test_model_key_is_the_folders_content_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "model.safetensors").write_bytes(b"\x00" * 1000)
    (folder / "README.md").write_text("docs do not matter")
    key = model_key(folder)
    assert model_key(folder) == key
    (folder / "README.md").write_text("edited docs")
    assert model_key(folder) == key
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in folder.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert model_key(copy) == key  # by content, not by path

    def no_hashing(*args, **kwargs):
        raise AssertionError("re-read unchanged files")

    monkeypatch.setattr(_local, "open", no_hashing, raising=False)
    assert model_key(folder) == key  # memoised by the files' paths, sizes and mtimes
    monkeypatch.undo()
    (folder / "model.safetensors").write_bytes(b"\x01" * 1000)
    assert model_key(folder) != key


def test_cached_fast_path_imports_no_torch(cached_env: Path, minilm) -> None:
    code = (
        "import json, sys\n"
        "import obembed\n"
        "p = obembed.load('st:all-MiniLM-L6-v2')\n"
        "v = p.embed_query('Which package checks ext4 file systems?')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'transformers', 'sentence_transformers', 'pydantic', 'pydantic_settings'))\n"
        "print(json.dumps({'type': type(p).__name__, 'runtime': p.runtime, 'space': p.space, 'heavy': heavy,\n"
        "                  'vec': v.tolist()}))\n"
    )
    env = {**os.environ, "OBEMBED_CACHE_DIR": str(cached_env), "HF_HUB_OFFLINE": "1",
           "OBEMBED_FAST_START": "auto"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["type"] == "OnnxProvider"
    assert got["runtime"] == "onnx-fp32"
    assert got["heavy"] == []
    assert got["space"] == minilm.space
    want = minilm.embed_query("Which package checks ext4 file systems?")
    assert cosines(np.array([got["vec"]], np.float32), want[None])[0] >= 0.9999


def test_cli_embed_takes_the_fast_path(cached_env: Path, minilm) -> None:
    exe = Path(sys.executable).with_name("obembed")
    env = {**os.environ, "OBEMBED_CACHE_DIR": str(cached_env), "HF_HUB_OFFLINE": "1",
           "OBEMBED_FAST_START": "auto"}
    out = subprocess.run([str(exe), "embed", "OceanBase stores vectors."], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    assert data["model"] == "onnx:all-MiniLM-L6-v2"
    want = minilm.embed_documents(["OceanBase stores vectors."])
    assert cosines(np.array(data["embeddings"], np.float32), want)[0] >= 0.9999


def test_load_chooses_the_runtime(cached_env: Path, minilm, hf, monkeypatch: pytest.MonkeyPatch) -> None:
    from obembed.settings import get_settings

    fast = load_provider("st:all-MiniLM-L6-v2", ("threads=1",))
    assert isinstance(fast, OnnxProvider)
    assert fast.runtime == "onnx-fp32"
    assert fast.space == minilm.space
    via_hf = load_provider("hf:all-MiniLM-L6-v2", ())
    assert isinstance(via_hf, OnnxProvider)
    assert via_hf.space == hf.space
    # options that change the vectors keep the torch path
    assert type(load_provider("st:all-MiniLM-L6-v2", ("truncate_dim=128",))).__name__ == "SentenceTransformerProvider"
    assert type(load_provider("hf:all-MiniLM-L6-v2", ("pooling=cls",))).__name__ == "TransformersProvider"
    # remote / other backends are untouched
    assert type(load_provider("onnx:all-MiniLM-L6-v2?precision=int8", ())).__name__ == "OnnxProvider"
    # runtime="torch" asks for torch; runtime="onnx" for the export
    forced = load_provider("st:all-MiniLM-L6-v2", (), runtime="torch")
    assert type(forced).__name__ == "SentenceTransformerProvider"
    assert forced.runtime == "torch"
    assert isinstance(load_provider("st:all-MiniLM-L6-v2", (), runtime="onnx"), OnnxProvider)
    monkeypatch.setenv("OBEMBED_FAST_START", "0")
    get_settings.cache_clear()
    assert type(load_provider("st:all-MiniLM-L6-v2", ())).__name__ == "SentenceTransformerProvider"


def test_cached_mode_never_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from obembed.settings import get_settings

    monkeypatch.setenv("OBEMBED_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("OBEMBED_FAST_START", "cached")
    get_settings.cache_clear()
    provider = load_provider("st:all-MiniLM-L6-v2", ())
    assert type(provider).__name__ == "SentenceTransformerProvider"
    assert not list(tmp_path.rglob("*.onnx"))


def test_choice_rule_covers_gpu_options_and_modes() -> None:
    auto = Settings(fast_start="auto")
    assert choose_runtime("st:all-MiniLM-L6-v2", settings=auto, gpu=False).path == "onnx"
    # a GPU, a device, an option that changes the vectors, a remote backend: the spec as written
    gpu = choose_runtime("st:all-MiniLM-L6-v2", settings=auto, gpu=True)
    assert (gpu.path, "GPU" in gpu.reason) == ("spec", True)
    assert choose_runtime("st:m", {"device": "cuda"}, settings=auto, gpu=False).path == "spec"
    assert choose_runtime("st:m?truncate_dim=64", settings=auto, gpu=False).path == "spec"
    assert choose_runtime("hf:m", {"pooling": "cls"}, settings=auto, gpu=False).path == "spec"
    assert choose_runtime("openai:text-embedding-3-small", settings=auto, gpu=False).path == "spec"
    assert choose_runtime("st:m", settings=Settings(fast_start="off"), gpu=False).path == "spec"
    cached = choose_runtime("st:m", settings=Settings(fast_start="cached"), gpu=False)
    assert (cached.path, cached.create_export) == ("onnx", False)
    # runtime="onnx" makes the export even in cached mode, and refuses what it can't reproduce
    assert choose_runtime("st:m", runtime="onnx", settings=Settings(fast_start="cached"), gpu=False).create_export
    with pytest.raises(ConfigError, match="truncate_dim"):
        choose_runtime("st:m?truncate_dim=64", runtime="onnx", settings=auto, gpu=False)
    with pytest.raises(ConfigError, match="runtime='bogus'"):
        choose_runtime("st:m", runtime="bogus", settings=auto)
    with pytest.raises(ConfigError, match="onnxruntime"):
        choose_runtime("onnx:m", runtime="torch", settings=auto)
