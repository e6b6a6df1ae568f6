"""Server fixtures: the real app on uvicorn, in a thread, on a free 127.0.0.1 port, serving the real MiniLM.

One server per configuration for the whole session (the model is loaded once, by the root ``minilm``
fixture); /search uses the root session ``store`` (embedded seekdb in a tmp folder).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from serverkit import API_KEY, DOCS, run_server


@pytest.fixture(scope="session")
def docs_collection(store, minilm) -> str:
    """A session collection of five short docs with MiniLM vectors and two scalar columns."""
    import uuid

    name = f"srv_docs_{uuid.uuid4().hex[:8]}"
    coll = store.create_collection(name, minilm, columns={"lang": "varchar(8)", "year": "int"})
    vecs = minilm.embed_documents([d[1] for d in DOCS])
    coll.upsert([{"id": i, "vector": v, "content": t, "source": f"docs/{i}.txt", "lang": lang, "year": y}
                 for (i, t, lang, y), v in zip(DOCS, vecs, strict=True)])
    yield name
    store.drop_collection(name)


@pytest.fixture(scope="session")
def image_collection(store, minilm, tmp_path_factory) -> str:
    """Rows whose sources are real PNG files (captions embedded with MiniLM): an image collection for thumbnails."""
    import uuid

    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    rows = []
    captions = [("red", "a plain red square picture"), ("blue", "a plain blue square picture")]
    vecs = minilm.embed_documents([c for _, c in captions])
    for (color, caption), v in zip(captions, vecs, strict=True):
        path = folder / f"{color}.png"
        Image.new("RGB", (300, 200), color).save(path)
        rows.append({"id": color, "vector": v, "content": caption, "source": str(path)})
    name = f"srv_images_{uuid.uuid4().hex[:8]}"
    coll = store.create_collection(name, minilm)
    coll.upsert(rows)
    yield name
    store.drop_collection(name)


@pytest.fixture(scope="session")
def server_config():
    from obembed.server.app import ServerConfig

    return ServerConfig(max_inputs=16, max_chars=2000, max_body_bytes=64 * 1024, batch_wait_ms=5)


@pytest.fixture(scope="session")
def app(minilm, store, server_config):
    """The app serving the real MiniLM (also as alias ``minilm``) and the session store."""
    from obembed.server.app import create_app

    return create_app([("minilm", minilm)], config=server_config, store=store)


@pytest.fixture(scope="session")
def base_url(app) -> Iterator[str]:
    with run_server(app) as url:
        yield url


@pytest.fixture(scope="session")
def auth_url(minilm) -> Iterator[str]:
    """A second server that requires ``Authorization: Bearer API_KEY`` (no store)."""
    from pydantic import SecretStr

    from obembed.server.app import ServerConfig, create_app

    app = create_app([minilm], config=ServerConfig(api_key=SecretStr(API_KEY)))
    with run_server(app) as url:
        yield url


@pytest.fixture
def http(base_url):
    import httpx

    with httpx.Client(base_url=base_url, timeout=60) as c:
        yield c
