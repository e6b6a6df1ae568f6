"""What an ingest run reports: counts, timings, failures (the run goes on past them) and notices."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .loaders import Failure

__all__ = ["MAX_FAILURES_KEPT", "IngestReport", "ProgressFn"]

MAX_FAILURES_KEPT = 10_000

ProgressFn = Callable[[str, int], None]
"""``progress(event, n)``; events: ``file`` (done), ``chunks`` (found), ``queued`` (to embed), ``embedded``,
``skipped`` (unchanged), ``failed``. Called from the pipeline's threads."""


@dataclass
class IngestReport:
    """What an ingest did. ``chunks_*`` count chunks; a chunk is one stored row."""

    collection: str
    model: str = ""
    files_seen: int = 0
    files_changed: int = 0
    """Files with at least one chunk embedded or deleted."""
    files_failed: int = 0
    chunks_total: int = 0
    chunks_embedded: int = 0
    """Chunks embedded and stored in this run (new or changed)."""
    chunks_skipped: int = 0
    """Chunks already stored with the same content hash: not embedded again."""
    chunks_truncated: int = 0
    """Chunks the model cut to its max input tokens (policy ``truncate``)."""
    chunks_failed: int = 0
    chunks_deleted: int = 0
    """Rows of chunks that no longer exist in changed files."""
    sources_pruned: int = 0
    rows_pruned: int = 0
    records_failed: int = 0
    policy: str = "chunk"
    seconds: float = 0.0
    embed_seconds: float = 0.0
    write_seconds: float = 0.0
    fulltext_seconds: float = 0.0
    """Building a new collection's FULLTEXT index over its first load (0 when it had one already)."""
    fulltext_beside: bool = False
    """The build ran while the model embedded the load's last slice (those rows were indexed as they were
    written), not after the load."""
    failures: list[dict[str, Any]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    failures_not_listed: int = 0

    def add_failure(self, f: Failure) -> None:
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append(f.to_dict())
        else:
            self.failures_not_listed += 1

    @property
    def ok(self) -> bool:
        return not self.failures and not self.failures_not_listed

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        d["embed_seconds"] = round(self.embed_seconds, 3)
        d["write_seconds"] = round(self.write_seconds, 3)
        d["fulltext_seconds"] = round(self.fulltext_seconds, 3)
        return d

    def summary(self) -> str:
        """Human-readable, several lines."""
        lines = [
            f"collection {self.collection} ({self.model}), {self.seconds:.1f} s",
            f"files: {self.files_seen} seen, {self.files_changed} changed, {self.files_failed} failed",
            f"chunks: {self.chunks_total} total, {self.chunks_embedded} embedded+stored, {self.chunks_skipped} "
            f"unchanged (skipped), {self.chunks_truncated} truncated, {self.chunks_failed} failed, "
            f"{self.chunks_deleted} stale rows deleted",
        ]
        if self.fulltext_seconds:
            when = "beside the model's last slice" if self.fulltext_beside else "after the load"
            lines.append(f"full-text index built over the loaded rows in {self.fulltext_seconds:.1f} s ({when})")
        if self.records_failed:
            lines.append(f"records failed: {self.records_failed}")
        if self.sources_pruned:
            lines.append(f"pruned: {self.rows_pruned} rows of {self.sources_pruned} deleted files")
        for f in self.failures:
            where = f"{f['source']}" + (f":{f['line']}" if f.get("line") is not None else "")
            lines.append(f"  FAILED {where}: {f['reason']}")
        if self.failures_not_listed:
            lines.append(f"  ... and {self.failures_not_listed} more failures")
        for n in self.notices:
            lines.append(f"  note {n['source']}: {n['message']}")
        return "\n".join(lines)

