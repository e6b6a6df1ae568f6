"""The CLI through click's runner (in-process) and once through the real console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from obembed.cli import COMMANDS, main

FOUR = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium.",
        "OceanBase stores vectors."]


@pytest.fixture
def runner():
    return CliRunner()


def test_help_on_every_command(runner):
    res = runner.invoke(main, ["--help"])
    assert res.exit_code == 0
    available = [name for name in COMMANDS if main._available(name)]
    assert {"embed", "similarity", "models"} <= set(available)
    for name in available:
        assert name in res.output
        sub = runner.invoke(main, [name, "--help"])
        assert sub.exit_code == 0, (name, sub.output)
        assert "Usage:" in sub.output
        assert len(sub.output) > 100


def test_embed_json(runner):
    res = runner.invoke(main, ["embed", "hello world", "vector search"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["model"] in ("st:all-MiniLM-L6-v2", "onnx:all-MiniLM-L6-v2")  # onnx: the verified fast path
    assert data["dimension"] == 384
    arr = np.array(data["embeddings"])
    assert arr.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(arr, axis=1), 1.0, atol=1e-5)


def test_embed_file_lines_jsonl_and_npy(runner, tmp_path: Path):
    lines = tmp_path / "texts.txt"
    lines.write_text("first text\n\nsecond text\n", encoding="utf-8")
    out = tmp_path / "v.npy"
    res = runner.invoke(main, ["embed", "--file", str(lines), "--format", "npy", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert np.load(out).shape == (2, 384)

    jl = tmp_path / "texts.jsonl"
    jl.write_text('{"text": "alpha"}\n{"text": "beta"}\n', encoding="utf-8")
    res = runner.invoke(main, ["embed", "--file", str(jl), "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["alpha", "beta"]
    assert len(rows[0]["embedding"]) == 384


def test_embed_reports_truncation(runner):
    res = runner.invoke(main, ["embed", "short", "word " * 600])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["truncated"] == [1]
    assert "1 of 2 inputs were truncated" in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["embed", "--model", "nosuch:x", "hi"], "unknown provider backend 'nosuch'"),
        (["embed", "--model", "st:/no/such/folder", "hi"], "/no/such/folder"),
        (["embed", "   "], "input 0 is empty"),
        (["embed", "--file", "/no/such/file.txt"], "does not exist"),
        (["embed"], "nothing to embed"),
        (["embed", "ok", "word " * 600, "--truncate", "error"], "input 1 has"),
    ],
)
def test_errors_are_one_line_without_traceback(runner, args, message):
    res = runner.invoke(main, args)
    assert res.exit_code != 0
    assert message in res.output
    assert "Traceback" not in res.output


def test_bad_jsonl_line_is_named(runner, tmp_path: Path):
    jl = tmp_path / "bad.jsonl"
    jl.write_text('{"text": "fine"}\n{not json\n', encoding="utf-8")
    res = runner.invoke(main, ["embed", "--file", str(jl)])
    assert res.exit_code == 1
    assert "line 2 is not JSON" in res.output


def test_similarity_table_json_and_plot(runner, tmp_path: Path):
    res = runner.invoke(main, ["similarity", *FOUR])
    assert res.exit_code == 0, res.output
    assert res.stdout.count("\n") == 5
    assert "1.0000" in res.stdout

    png = tmp_path / "sim.png"
    res = runner.invoke(main, ["similarity", *FOUR, "--json", "--plot", str(png)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    m = np.array(data["matrix"])
    assert m.shape == (4, 4)
    assert data["labels"] == FOUR
    assert m[0, 1] > m[0, 2]  # weather pair closer than weather/stadium
    from PIL import Image

    with Image.open(png) as im:
        assert im.format == "PNG"
        assert im.size[0] > 300
        assert im.size[1] > 300
        assert len(set(im.convert("RGB").getdata())) > 50  # a real picture, not a blank canvas


def test_models_lists_backends(runner):
    res = runner.invoke(main, ["models", "--json"])
    data = json.loads(res.stdout)
    assert data["default"] == "st:all-MiniLM-L6-v2"
    assert {"st", "hf", "ollama", "openai-compatible", "dashscope", "dashscope-sdk", "clip"} <= set(data["backends"])
    res = runner.invoke(main, ["models"])
    assert "BAAI/bge-m3" in res.output
    assert "st:all-MiniLM-L6-v2" in res.output


def test_real_console_script(tmp_path: Path):
    exe = shutil.which("obembed") or str(Path(sys.executable).parent / "obembed")
    out = subprocess.run([exe, "similarity", "--json", "a cat", "a kitten", "a database"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    m = np.array(json.loads(out.stdout)["matrix"])
    assert m.shape == (3, 3)
    assert m[0, 1] > m[0, 2]
    bad = subprocess.run([exe, "embed", "--model", "nosuch:x", "hi"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert bad.returncode == 1
    assert "Error: unknown provider backend" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written into the working folder


def test_read_texts_plain_file_starting_with_a_quote_stays_text(tmp_path: Path):
    from obembed.cli.embed import read_texts

    plain = tmp_path / "quotes.txt"
    plain.write_text('"To be or not to be," said Hamlet.\n{braces} are fine too\nthird line\n', encoding="utf-8")
    assert read_texts(str(plain)) == ['"To be or not to be," said Hamlet.', "{braces} are fine too", "third line"]
    # a file with no .jsonl suffix whose every line is JSON is still read as JSONL
    sniffed = tmp_path / "rows.txt"
    sniffed.write_text('{"text": "alpha"}\n"beta"\n', encoding="utf-8")
    assert read_texts(str(sniffed)) == ["alpha", "beta"]
