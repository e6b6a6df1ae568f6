"""Hostile input to the Python providers and the CLI (issue 20): every bad item is an ``InvalidInputError`` naming
it (never a raw ``TypeError`` from a tokenizer), every bad path a one-line CLI error (never a traceback).

Example counts come from the hypothesis profile (tests/conftest.py); OBEMBED_HYPOTHESIS_PROFILE=thorough runs more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from obembed.cli import main
from obembed.errors import ConfigError, InvalidInputError
from obembed.outputs import PLOT_SUFFIXES, check_output
from obembed.store.dsn import parse_dsn

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=30)  # lone surrogates, NUL, controls included
ITEM = st.one_of(ANY_TEXT, ANY_TEXT, st.none(), st.integers(), st.floats(), st.binary(max_size=8),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _first_bad(items: list[Any]) -> int | None:
    """The index the error must name: the first item that is not non-blank valid Unicode text."""
    for i, t in enumerate(items):
        if not isinstance(t, str) or not t.strip() or any(0xD800 <= ord(c) <= 0xDFFF for c in t):
            return i
    return None


# ------------------------------------------------------------------------------------------- regressions
def test_lone_surrogate_is_an_invalid_input_error_naming_the_item(minilm):
    with pytest.raises(InvalidInputError, match=r"input 1 contains '\\ud800' at position 1, a lone surrogate") as ei:
        minilm.embed_documents(["fine", "a\ud800b"])
    assert ei.value.index == 1
    with pytest.raises(InvalidInputError, match="input 0 contains"):
        minilm.embed_query("\udfff")


@pytest.mark.parametrize("items", [None, 42, {"a": "b"}])
def test_not_a_list_of_texts(minilm, items):
    with pytest.raises(InvalidInputError, match="expected a list of texts, got"):
        minilm.embed_documents(items)


def test_kind_must_be_query_or_document(minilm):
    with pytest.raises(InvalidInputError, match="kind='bogus' is not a kind of input"):
        minilm.embed(["a text"], kind="bogus")
    assert minilm.embed(["a text"], kind="query").vectors.shape == (1, 384)


# ------------------------------------------------------------------------------------------- properties
def test_property_provider_inputs(minilm):
    @given(items=st.one_of(st.lists(ITEM, max_size=5), st.none(), st.integers(), ANY_TEXT,
                           st.dictionaries(st.text(max_size=3), ANY_TEXT, max_size=2)),
           kind=st.one_of(st.sampled_from(["query", "document"]), st.text(max_size=8), st.none()))
    def check(items: Any, kind: Any) -> None:
        try:
            result = minilm.embed(items, kind=kind)
        except InvalidInputError as exc:
            msg = str(exc)
            if kind not in ("query", "document"):
                assert f"kind={kind!r}" in msg
            elif not isinstance(items, list):
                assert "expected a list of texts" in msg
            else:
                bad = _first_bad(items)
                assert bad is not None, f"refused good input {items!r}: {msg}"
                assert exc.index == bad, (items, msg)  # noqa: PT017 - the property's oracle needs the caught error
                assert f"input {bad} " in msg, (items, msg)
            return
        assert kind in ("query", "document")
        assert isinstance(items, list)
        assert _first_bad(items) is None
        assert result.vectors.shape == (len(items), 384)
        assert np.isfinite(result.vectors).all()

    check()


@st.composite
def bad_plot_paths(draw: st.DrawFn, root: Path) -> tuple[str, str]:
    """A --plot path that cannot be written, and the part of it the error must name."""
    name = draw(st.text(st.characters(exclude_characters="/\x00", exclude_categories=("Cs",)), min_size=1,
                        max_size=20))
    kind = draw(st.sampled_from(["missing-folder", "bad-suffix", "folder", "nul"]))
    if kind == "missing-folder":
        return str(root / "no_such_dir" / (name + draw(st.sampled_from(PLOT_SUFFIXES)))), "does not exist"
    if kind == "bad-suffix":
        suffix = draw(st.sampled_from(["", ".txt", ".json", ".png.txt", ".jpeg", ".PNGX"]))
        return str(root / (name.replace(".", "_") + suffix)), "use one of .png, .svg, .pdf"
    if kind == "folder":
        return str(root / "a_folder.png"), "is a folder"
    return str(root / (name + "\x00.png")), "not a usable path"


def test_property_cli_plot_paths_fail_in_one_line(tmp_path):
    """Bad --plot paths are refused before the model loads: exit 1, one 'Error:' line naming --plot."""
    (tmp_path / "a_folder.png").mkdir()
    runner = CliRunner()

    @given(case=bad_plot_paths(tmp_path))
    def check(case: tuple[str, str]) -> None:
        path, why = case
        res = runner.invoke(main, ["similarity", "--plot", path, "one", "two"])
        assert res.exit_code == 1, (path, res.output)
        lines = res.output.strip().split("\n")
        assert len(lines) == 1, res.output
        assert lines[0].startswith("Error: --plot"), res.output
        assert why in lines[0], res.output
        assert "Traceback" not in res.output
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a_folder.png"]  # nothing created

    check()


def test_property_check_output_accepts_writable_paths(tmp_path):
    @given(name=st.text(st.characters(exclude_characters="/\x00.", exclude_categories=("Cs",)), min_size=1,
                        max_size=40),
           suffix=st.sampled_from(PLOT_SUFFIXES + tuple(s.upper() for s in PLOT_SUFFIXES)))
    def check(name: str, suffix: str) -> None:
        assert check_output(tmp_path / (name + suffix), suffixes=PLOT_SUFFIXES) == tmp_path / (name + suffix)

    check()


# ------------------------------------------------------------------------------------------- CLI regressions
def _one_line_error(res: Any) -> str:
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    lines = res.output.strip().split("\n")
    assert len(lines) == 1, res.output
    assert lines[0].startswith("Error: "), res.output
    return str(lines[0])


def test_embed_output_in_a_missing_folder(tmp_path):
    line = _one_line_error(CliRunner().invoke(main, ["embed", "--output", str(tmp_path / "missing/dir/o.json"),
                                                     "hi"]))
    assert "--output" in line
    assert "does not exist" in line
    assert "mkdir -p" in line
    assert list(tmp_path.iterdir()) == []


def test_similarity_plot_missing_folder_and_wrong_type(tmp_path):
    line = _one_line_error(CliRunner().invoke(main, ["similarity", "--plot", str(tmp_path / "missing/x.png"),
                                                     "a", "b"]))
    assert "does not exist" in line
    line = _one_line_error(CliRunner().invoke(main, ["similarity", "--plot", str(tmp_path / "out.txt"), "a", "b"]))
    assert "'.txt' file; use one of .png, .svg, .pdf (e.g. 'out.png')" in line
    assert list(tmp_path.iterdir()) == []


def test_similarity_plot_writes_an_svg(tmp_path):
    res = CliRunner().invoke(main, ["similarity", "--json", "--plot", str(tmp_path / "sim.svg"), "a cat", "a dog"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "sim.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")


@pytest.mark.parametrize("dsn", ["mysql://u:secretpw@[::1/x", "mysql://u:secretpw@[::1", "mysql://u:secretpw@h/db?"
                                 "connect_timeout=soon"])
def test_malformed_dsn_is_a_config_error_without_the_password(dsn):
    with pytest.raises(ConfigError) as ei:
        parse_dsn(dsn)
    msg = str(ei.value)
    assert "secretpw" not in msg
    assert "not a valid URL" in msg or "connect_timeout must be a number" in msg


def test_malformed_dsn_on_the_command_line(tmp_path):
    res = CliRunner().invoke(main, ["collections", "list", "--dsn", "mysql://u:secretpw@[::1/x"])
    line = _one_line_error(res)
    assert "not a valid URL" in line
    assert "secretpw" not in line


def test_embed_file_refuses_a_binary_file(tmp_path):
    blob = tmp_path / "model.bin"
    blob.write_bytes(bytes(range(256)) * 8)
    line = _one_line_error(CliRunner().invoke(main, ["embed", "--file", str(blob)]))
    assert "is not text: binary content (NUL bytes)" in line
    assert "--image" in line
