from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

import obembed
from obembed.errors import ConfigError, UnknownProviderError
from obembed.providers.base import Provider
from obembed.registry import BUILTIN_BACKENDS, Registry, default_registry, parse_spec


def test_parse_spec_forms():
    s = parse_spec("dashscope:text-embedding-v3?dimensions=512&normalize=false&name=x")
    assert (s.backend, s.model) == ("dashscope", "text-embedding-v3")
    assert s.options == {"dimensions": 512, "normalize": False, "name": "x"}
    assert parse_spec("st:BAAI/bge-m3").model == "BAAI/bge-m3"
    assert parse_spec("BAAI/bge-m3").backend == "st"  # no backend: sentence-transformers
    assert parse_spec("/models/my-model").backend == "st"
    assert parse_spec("sentence-transformers:all-MiniLM-L6-v2").backend == "st"
    assert parse_spec("ollama:bge-m3:latest").model == "bge-m3:latest"


@pytest.mark.parametrize("bad", ["", "   ", "st:"])
def test_parse_spec_refuses_empty(bad):
    with pytest.raises(ConfigError):
        parse_spec(bad)


def test_unknown_backend_lists_known_ones():
    with pytest.raises(UnknownProviderError) as info:
        obembed.load("nosuch:model")
    for name in ("st", "hf", "ollama", "dashscope", "clip"):
        assert name in str(info.value)
    assert "nosuch" in str(info.value)


def test_every_builtin_backend_is_importable_at_its_path():
    reg = default_registry()
    assert set(BUILTIN_BACKENDS) <= set(reg.names())
    for name in ("st", "hf"):
        cls = reg.get(name)
        assert issubclass(cls, Provider)
        assert cls.name == name


class EchoProvider(Provider):
    """Test provider: a vector made from the text's length (deterministic)."""

    name = "echo"
    extra_options = True

    def embed_batch(self, items: Sequence[str], *, kind: str) -> np.ndarray:
        return np.array([[len(t), 1.0] for t in items], dtype=np.float32)


def test_own_registry_register_and_create_with_options():
    reg = Registry()
    reg.register(EchoProvider)
    p = reg.create("echo:anything?batch_size=2", extra=5)
    assert p.batch_size == 2
    assert p.options == {"extra": 5}
    vecs = p.embed_documents(["a", "bbb", "cc", "dddd", "e"])  # three batches of <= 2
    assert vecs[:, 0].tolist() == [1, 3, 2, 4, 1]
    assert reg.describe()["echo"].startswith("Test provider")
    assert "echo" not in default_registry().names()  # no global state


def test_bad_option_is_a_config_error():
    with pytest.raises(ConfigError, match="bad option"):
        obembed.load("st:all-MiniLM-L6-v2", no_such_option=1)


def test_secret_options_never_shown():
    reg = Registry()
    reg.register(EchoProvider)
    p = reg.create("echo:m", api_key="sk-very-secret-123456")
    assert "sk-very" not in repr(p)
    assert "api_key" not in p.public_options()


def test_provider_base_checks_the_backend_output():
    from obembed.errors import ProviderResponseError

    class Broken(EchoProvider):
        name = "broken"

        def embed_batch(self, items, *, kind):
            out = super().embed_batch(items, kind=kind)
            return out[:-1] if len(items) > 2 else np.full_like(out, np.nan)

    with pytest.raises(ProviderResponseError, match="2 vectors for 3 inputs"):
        Broken("m", batch_size=8).embed_documents(["a", "b", "c"])
    with pytest.raises(ProviderResponseError, match="NaN"):
        Broken("m").embed_documents(["a"])
