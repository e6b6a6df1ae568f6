from __future__ import annotations

import subprocess
import sys

import obembed
from obembed import errors


def test_public_api_exports_exist():
    for name in obembed.__all__:
        assert hasattr(obembed, name), name
    for name in errors.__all__:
        assert hasattr(errors, name), name


def test_error_tree_shape():
    assert issubclass(errors.ProviderTimeoutError, errors.ProviderConnectionError)
    assert issubclass(errors.RateLimitError, errors.ProviderStatusError)
    assert issubclass(errors.UnknownProviderError, errors.ConfigError)
    assert issubclass(errors.DimensionMismatchError, errors.StoreError)
    assert issubclass(errors.InvalidInputError, ValueError)
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, errors.ObembedError)
            assert obj.__doc__, f"{name} needs a one-line docstring"
            assert 400 <= obj.http_status < 600


def test_missing_dependency_says_what_to_install():
    e = errors.MissingDependencyError("open_clip_torch", "clip", "open_clip: models")
    assert "pip install 'obembed[clip]'" in str(e)


def test_redact_removes_secrets():
    text = ("Authorization: Bearer sk-abcdefghijkl api_key=XYZ123 "
            "mysql://root:hunter2@db:2881/x password: pw99 token=tok-1")
    out = errors.redact(text, "extra-secret")
    for secret in ("sk-abcdefghijkl", "XYZ123", "hunter2", "pw99", "tok-1"):
        assert secret not in out
    assert errors.redact("key extra-secret here", "extra-secret") == "key *** here"


def test_import_is_light():
    code = ("import sys, obembed, obembed.cli; heavy = [m for m in ('torch', 'transformers', "
            "'sentence_transformers', 'onnxruntime', 'matplotlib', 'PIL', 'fastapi') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_redact_keeps_error_codes_that_merely_contain_key_words():
    msg = "invalid_api_key: Incorrect API key provided"
    assert errors.redact(msg) == msg
    assert "s3cr3t" not in errors.redact('{"api_key": "s3cr3t"}')
