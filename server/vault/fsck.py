"""The consistency check between version rows and blob files: missing, corrupt, orphaned, left over.

A crash can leave two kinds of debris and never a dangling reference: temporary files of unfinished writes
(in a bucket: temporary objects, unfinished multipart uploads, and the dead writer's pins), and blobs whose
versions were purged or deleted just before the blobs were removed. The same check runs over either backend. Both are safe to
delete. A missing or corrupt blob is reported, never "repaired": only a backup can bring it back.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from .blob_backend import BlobBackend
from .records import FsckReport

__all__ = ["run_fsck"]

log = logging.getLogger(__name__)


def run_fsck(
    store: BlobBackend, live: Counter[str], *, is_live: Callable[[str], bool], repair: bool
) -> FsckReport:
    """Check every live blob's bytes, then find orphans and temporary files; remove those with `repair`.

    `live` counts unpurged versions per digest, read before the scan; `is_live` re-asks the database at
    deletion time, so a version committed during the scan keeps its blob.
    """
    missing, corrupt = [], []
    for sha256 in sorted(live):
        actual = store.hash_file(sha256)
        if actual is None:
            missing.append(sha256)
        elif actual != sha256:
            corrupt.append(sha256)
    orphans = [sha for sha in store.stored_digests() if sha not in live and not store.is_pinned(sha)]
    temps = store.stale_temps()
    removed: list[str] = []
    if repair:
        removed += store.delete_unreferenced(orphans, is_referenced=is_live)
        for name in temps:
            store.remove_temp(name)
            removed.append(name)
    report = FsckReport(
        checked_versions=sum(live.values()),
        checked_blobs=len(live),
        missing=tuple(missing),
        corrupt=tuple(corrupt),
        orphans=tuple(orphans),
        temp_files=tuple(temps),
        repaired=repair,
        removed=tuple(removed),
    )
    log.info(
        "fsck: %d blobs checked, %d missing, %d corrupt, %d orphans, %d temp files, %d removed",
        report.checked_blobs, len(missing), len(corrupt), len(orphans), len(temps), len(removed),
    )
    return report
