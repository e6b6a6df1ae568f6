"""The obembed HTTP server (``obembed serve``): see :mod:`obembed.server.app`.

Importing this package is cheap; FastAPI and uvicorn load with :func:`create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["create_app"]

if TYPE_CHECKING:
    from fastapi import FastAPI


def create_app(*args: Any, **kwargs: Any) -> FastAPI:
    """See :func:`obembed.server.app.create_app`."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)
