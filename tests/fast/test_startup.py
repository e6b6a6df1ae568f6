"""Start-up: what ``import obembed`` loads, the settings reader that replaced pydantic-settings, and the overlapped
load of the ONNX path (background session, lazy cutting tokenizer) giving the same vectors as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obembed.errors import ConfigError
from obembed.settings import FIELDS, Settings

HEAVY = ("torch", "transformers", "sentence_transformers", "onnxruntime", "tokenizers", "pydantic",
         "pydantic_settings", "pymysql", "pylibseekdb", "click", "httpx")


def test_import_obembed_loads_no_heavy_package() -> None:
    code = ("import json, sys\nimport obembed\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
            "obembed.get_settings()\nprint(obembed.__version__, callable(obembed.load), obembed.Provider.__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OBEMBED_DSN": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    first, second = out.stdout.strip().splitlines()
    assert json.loads(first) == []
    version, is_callable, provider = second.split()
    assert version  # the lazy names resolve
    assert is_callable == "True"
    assert provider == "Provider"


# ---------------------------------------------------------------------------------------------- settings
NUMERIC = {name: f for name, f in FIELDS.items() if name in
           ("engine_idle", "batch_size", "timeout", "max_retries", "ingest_write_delay")}


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(NUMERIC)), raw=st.text(max_size=12))
def test_a_bad_number_is_an_error_naming_the_variable(name: str, raw: str) -> None:
    try:
        want = NUMERIC[name].parse(raw)
    except ValueError:
        with pytest.raises(ConfigError, match=f"OBEMBED_{name.upper()}") as exc:
            Settings(_environ={f"OBEMBED_{name.upper()}": raw}, _env_file=None)
        assert "takes" in str(exc.value)  # what the variable takes: the fix
        return
    assert getattr(Settings(_environ={f"OBEMBED_{name.upper()}": raw}, _env_file=None), name) == want


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(NUMERIC)), value=st.integers(min_value=1, max_value=10**6))
def test_a_good_number_reads_back_exactly(name: str, value: int) -> None:
    s = Settings(_environ={f"obembed_{name}": f" {value} "}, _env_file=None)  # any case, spaces around
    assert getattr(s, name) == value
    assert type(getattr(s, name)) is type(FIELDS[name].default)


@settings(max_examples=30, deadline=None)
@given(model=st.text(min_size=1, max_size=30).filter(lambda t: "\n" not in t and "\x00" not in t))
def test_precedence_keyword_env_dotenv_default(tmp_path_factory: pytest.TempPathFactory, model: str) -> None:
    env_file = tmp_path_factory.mktemp("dotenv") / ".env"
    env_file.write_text("OBEMBED_MODEL=from-dotenv\nOBEMBED_DB_PATH=/from/dotenv\nOTHER=1\n", encoding="utf-8")
    env = {"OBEMBED_MODEL": model}
    assert Settings(_environ={}, _env_file=str(env_file)).model == "from-dotenv"
    assert Settings(_environ=env, _env_file=str(env_file)).model == model
    assert Settings(_environ=env, _env_file=str(env_file), model="kw").model == "kw"
    assert Settings(_environ=env, _env_file=str(env_file)).db_path == "/from/dotenv"
    assert Settings(_environ={}, _env_file=None).model == FIELDS["model"].default


def test_choices_threads_secret_and_unknown_names() -> None:
    s = Settings(_environ={"OBEMBED_TRUNCATE": "Error", "OBEMBED_THREADS": "3",
                           "OBEMBED_DSN": "mysql://u:pw-Secret@h:1/db"}, _env_file=None)
    assert (s.truncate, s.threads_fixed) == ("error", 3)
    assert s.dsn is not None
    assert s.dsn.get_secret_value() == "mysql://u:pw-Secret@h:1/db"
    assert "pw-Secret" not in repr(s)
    assert "pw-Secret" not in str(s.as_dict())
    with pytest.raises(ConfigError, match=r"OBEMBED_TRUNCATE.*truncate, error, chunk"):
        Settings(_environ={"OBEMBED_TRUNCATE": "cut"}, _env_file=None)
    with pytest.raises(ConfigError, match="truncate") as exc:  # the secret is never in an error
        Settings(_environ={"OBEMBED_DSN": "mysql://u:pw-Secret@h:1/db"}, _env_file=None, truncate="nope")
    assert "pw-Secret" not in str(exc.value)
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings(modle="st:x")
    assert Settings(_environ={}, _env_file=None) == Settings(_environ={}, _env_file=None)


# ---------------------------------------------------------------------------------------------- same vectors
def test_overlapped_start_gives_the_vectors_of_the_plain_start(onnx_fp32, texts) -> None:
    """The provider's first session (built on a thread while the tokenizer loads; the cutting tokenizer made on
    first use) gives bit-identical vectors to a session and tokenizers built the plain way, in order."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from obembed.providers.onnx import OnnxProvider

    texts = [*texts[:4], *texts[-2:]]  # short ones, one over 128 tokens, one over 256
    fresh = OnnxProvider("all-MiniLM-L6-v2", cache_dir=onnx_fp32.cache_dir, threads=2).load()
    got = fresh.embed_documents(texts)  # the over-256-token text needs the cutting tokenizer
    runner = fresh._runner
    full = Tokenizer.from_file(str(runner.tok_path))
    full.no_padding()
    full.no_truncation()
    cut = Tokenizer.from_str(full.to_str())
    cut.enable_truncation(max_length=runner.tok.max_len)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 2, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    plain = ort.InferenceSession(str(runner.path), so, providers=["CPUExecutionProvider"])
    want = np.vstack([runner.embed(cut.encode_batch([t]), plain) for t in texts])
    assert np.array_equal(got, want)
    assert runner.advisor is fresh._advisor  # the thread measurement started with the provider


def test_a_failing_background_session_surfaces_on_first_use(onnx_fp32, tmp_path: Path) -> None:
    from obembed.providers.onnx import Runner

    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx file")
    runner = Runner(broken, onnx_fp32._facts, onnx_fp32._runner.tok_path, 1)
    with pytest.raises(Exception, match=r"(?i)protobuf|onnx|load|pars"):
        runner.embed(runner.tok.encode_full(["a text"]))
