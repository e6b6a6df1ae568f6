"""The one deterministic fake model of the test suite, for where a real model would only cost time: a real
:class:`obembed.Provider` subclass (so the base class's validation, accounting and checks all run) whose
vectors are hashed bags of words. It is its own vector space, never MiniLM's."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from obembed import Provider
from obembed.types import Kind, Vectors


class HashProvider(Provider):
    """Hashed bag-of-words vectors, unit length, ``dim`` wide (default 384): texts sharing words are close."""

    name = "hash"

    def __init__(self, model: str = "hash-384", *, dim: int = 384) -> None:
        super().__init__(model)
        self._dimension = dim

    def embed_batch(self, items: Sequence[str], *, kind: Kind) -> Vectors:
        dim = self.dimension
        out = np.zeros((len(items), dim), np.float32)
        for r, text in enumerate(items):
            for tok in text.lower().split():
                out[r, int(hashlib.blake2b(tok.encode(), digest_size=4).hexdigest(), 16) % dim] += 1.0
        out[:, 0] += 1e-3  # never a zero vector
        result: Vectors = out / np.linalg.norm(out, axis=1, keepdims=True)
        return result
