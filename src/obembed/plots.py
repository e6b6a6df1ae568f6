"""Plots shared by ``obembed similarity --plot``, ``obembed eval`` and ``obembed map`` (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MissingDependencyError

__all__ = ["heatmap", "pyplot"]


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend (works with no display)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "plot", "plots") from exc
    return plt


def heatmap(matrix: np.ndarray, labels: Sequence[str], out: str | Path, *, title: str = "",
            short: int = 32) -> Path:
    """Save an annotated heatmap of ``matrix`` (rows and columns labelled) to ``out`` (PNG, SVG, PDF)."""
    plt = pyplot()
    n = len(labels)
    size = max(4.0, min(0.9 * n + 3, 24))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    try:
        im = ax.imshow(matrix, cmap="viridis")
        names = [lb if len(lb) <= short else lb[: short - 1] + "…" for lb in labels]
        ax.set_xticks(range(n), labels=[str(i) for i in range(n)])
        ax.set_yticks(range(n), labels=[f"[{i}] {s}" for i, s in enumerate(names)])
        if n <= 20:
            lo, hi = float(np.min(matrix)), float(np.max(matrix))
            mid = (lo + hi) / 2
            for i in range(matrix.shape[0]):
                for j in range(matrix.shape[1]):
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="black" if matrix[i, j] > mid else "white")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if title:
            ax.set_title(title)
        fig.tight_layout()
        out = Path(out)
        fig.savefig(out, dpi=110)
    finally:
        plt.close(fig)
    return out
