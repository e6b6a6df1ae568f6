"""``obembed map`` and its library: a real (session) store collection, PCA, sampling, HTML and PNG;
plus the shared plotting code (``similarity --plot`` heatmap)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from obembed.errors import ConfigError, InvalidInputError
from obembed.eval.projection import collection_points, pca_2d, project, sample_rows, write_map_html, write_map_png

LANGS = ("en", "ja", "fr")


@pytest.fixture
def clustered(store, collection_name):
    """60 rows in three well-separated 16-d clusters, one per language, with a declared `lang` column."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 16)) * 5
    coll = store.create_collection(collection_name, 16, columns={"lang": "varchar(8)"}, index="hnsw")
    rows = []
    for i in range(60):
        c = i % 3
        rows.append({"id": f"r{i:02d}", "vector": centres[c] + rng.normal(size=16) * 0.3,
                     "content": f"text {i} <b>about</b> {LANGS[c]}", "lang": LANGS[c],
                     "metadata": {"topic": f"t{c}"}})
    coll.upsert(rows)
    return coll


def test_pca_separates_clusters_and_colours_by_column(clustered):
    pts = collection_points(clustered, color_by="lang")
    assert pts.total == 60
    assert len(pts.ids) == 60
    assert pts.method == "pca"
    assert sum(pts.explained) > 0.9  # three clusters: two axes hold almost all the variance
    groups = np.asarray(pts.groups)
    centres = {g: pts.xy[groups == g].mean(axis=0) for g in LANGS}
    spread = max(float(np.linalg.norm(pts.xy[groups == g] - centres[g], axis=1).max()) for g in LANGS)
    gaps = [np.linalg.norm(centres[a] - centres[b]) for a in LANGS for b in LANGS if a < b]
    assert min(gaps) > 3 * spread  # clusters stay apart in 2-D
    # the row's own column drives the colour: r00 is cluster 0 = en
    assert pts.groups[pts.ids.index("r00")] == "en"
    meta = collection_points(clustered, color_by="metadata.topic")
    assert meta.groups[meta.ids.index("r01")] == "t1"


def test_sampling_is_seeded_and_bounded(clustered):
    a = collection_points(clustered, max_points=20, seed=3)
    b = collection_points(clustered, max_points=20, seed=3)
    c = collection_points(clustered, max_points=20, seed=4)
    assert len(a.ids) == 20
    assert a.total == 60
    assert a.ids == b.ids
    assert a.ids != c.ids
    rows, n = sample_rows([[{"id": i} for i in range(10)], [{"id": i} for i in range(10, 25)]], 25)
    assert n == 25
    assert [r["id"] for r in rows] == list(range(25))  # under the cap: everything, in order


def test_map_html_and_png(clustered, tmp_path):
    from PIL import Image

    pts = collection_points(clustered, color_by="lang")
    page = write_map_html(pts, tmp_path / "map.html").read_text()
    assert page.count("<circle") == 60
    assert "<script src" not in page
    assert "https://" not in page
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
                      .group(1).replace("<\\/", "</"))
    texts = {p["id"]: p["text"] for p in data["points"]}
    assert texts["r05"] == "text 5 <b>about</b> fr"  # hover text, kept as data (the page sets textContent)
    assert "<b>about</b>" not in page.split('id="data"')[0]  # never injected as markup into the SVG
    assert {p["group"] for p in data["points"]} == set(LANGS)
    png = write_map_png(pts, tmp_path / "map.png")
    with Image.open(png) as img:
        assert img.size[0] >= 500
        assert len(img.convert("RGB").getcolors(1 << 20)) > 10  # points in several colours


def test_map_cli_with_the_real_store(clustered, store, tmp_path, monkeypatch):
    from obembed.cli import main

    class Shared:
        def __getattr__(self, name):
            return getattr(store, name)

        def close(self):
            pass

    seen = {}

    def fake_connect(dsn=None, **kw):
        seen.update(dsn=dsn, **kw)
        return Shared()

    monkeypatch.setattr("obembed.store.connect", fake_connect)
    out = tmp_path / "m.html"
    res = CliRunner().invoke(main, ["map", "-c", clustered.name, "--color-by", "lang", "--out", str(out),
                                    "--db-path", str(tmp_path / "db"), "--json"])
    assert res.exit_code == 0, res.output
    assert seen["path"] == str(tmp_path / "db")
    assert out.stat().st_size > 1000
    assert len(json.loads(res.stdout)["points"]) == 60
    res = CliRunner().invoke(main, ["map", "-c", clustered.name, "--color-by", "nosuch", "--out", str(out)])
    assert res.exit_code == 1
    assert "no row of" in res.output
    assert "lang" in res.output  # the error lists the columns there are
    res = CliRunner().invoke(main, ["map", "-c", "no_such_collection", "--out", str(out)])
    assert res.exit_code == 1
    assert "no_such_collection" in res.output
    res = CliRunner().invoke(main, ["map", "-c", clustered.name, "--out", str(tmp_path / "m.txt")])
    assert res.exit_code == 2


def test_pca_by_hand_and_umap_missing(monkeypatch):
    x = np.array([[0, 0, 0], [2, 0, 0], [4, 0, 0], [2, 1, 0]], dtype=float)
    xy, explained = pca_2d(x)
    assert np.allclose(np.abs(xy[:, 0]), [2, 0, 2, 0])  # first axis: the x spread around the mean 2
    assert explained[0] > explained[1] > 0
    with pytest.raises(InvalidInputError, match="at least 2"):
        pca_2d(x[:1])
    monkeypatch.setitem(__import__("sys").modules, "umap", None)  # as if umap-learn were not installed
    with pytest.raises(ConfigError, match="pip install umap-learn"):
        project(x, "umap")


def test_similarity_plot_heatmap_still_works(tmp_path):
    from PIL import Image

    from obembed.plots import heatmap

    m = np.array([[1.0, 0.2, 0.1], [0.2, 1.0, 0.5], [0.1, 0.5, 1.0]])
    out = heatmap(m, ["a cat", "a dog", "OceanBase stores vectors"], tmp_path / "h.png", title="t")
    with Image.open(out) as img:
        assert img.size[0] > 300
        assert img.size[1] > 300
