"""Where the workplace's shared data is: ``shared/`` in the checkout where there is one, else beside it."""

from __future__ import annotations

from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
SHARED = next((p for p in (_REPO / "shared", _REPO.parent / "shared") if p.is_dir()), _REPO.parent / "shared")
DEBIAN = SHARED / "data" / "debian-descriptions"
