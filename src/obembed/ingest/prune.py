"""``--prune``: delete the rows of files that are gone for sure, and nothing else."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from .report import IngestReport

__all__ = ["prune_missing", "source_is_gone"]

log = logging.getLogger("obembed.ingest.pipeline")


def prune_missing(coll: Any, report: IngestReport, *, roots: Sequence[str], seen_sources: Collection[str],
                  existing_sources: Mapping[str | None, int], root_files: Mapping[str, int],
                  walk_failed: Collection[str]) -> None:
    """Delete the rows of sources under the ingested roots whose files are gone for sure.

    A file is gone only when ``os.stat`` says it does not exist (FileNotFoundError): a file that cannot be
    reached right now (permissions, I/O error, a symlink loop, an unmounted share) keeps its rows. Nothing is
    pruned under a root that is missing, unreadable or yielded no file at all in this run (a share that is
    not mounted looks like that), nor under a folder the walk could not read.
    """
    def under(source: str, folder: str) -> bool:
        folder = folder.rstrip(os.sep) or os.sep
        return source == folder or source.startswith(folder.rstrip(os.sep) + os.sep)

    usable: list[str] = []
    for root in roots:
        if root in walk_failed or not root_files.get(root):
            why = ("could not be read" if root in walk_failed else "yielded no file")
            report.notices.append({"source": root, "message": f"not pruned: {root} {why} in this run, so "
                                   "its stored rows are kept (a missing or unmounted folder looks the same "
                                   "as deleted files); fix the path, or drop the rows explicitly"})
            log.warning("ingest --prune: %s %s; nothing pruned under it", root, why)
            continue
        usable.append(root)
    failed_dirs = [f for f in walk_failed if f not in roots]
    for source in list(existing_sources):
        if source is None or source in seen_sources:
            continue
        if not any(under(source, r) for r in usable) or any(under(source, d) for d in failed_dirs):
            continue
        if not source_is_gone(source):  # still there (excluded/failed this time) or unreachable: keep
            continue
        ids = list(coll.hashes(source))
        if ids:
            report.rows_pruned += coll.delete(ids=ids)
            report.sources_pruned += 1


def source_is_gone(path: str) -> bool:
    """True only when ``path`` certainly does not exist (``os.stat`` raises FileNotFoundError); any other error
    (permission denied, I/O error, a symlink loop, a stale mount) means "unreachable now", not "deleted"."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return True
    except (OSError, ValueError) as exc:
        log.info("ingest --prune: %s is unreachable (%s); its rows are kept", path, exc)
        return False
    return False
