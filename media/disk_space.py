"""The recording volume's free space, watched: below a floor, recording pauses; calls go on.

A full disk must not end a call, nor leave a segment half written and unhashed: the media node
looks at the free space of its recordings directory (``os.statvfs``, a cheap system call) every
``CHECK_EVERY_SECS`` on its clock and, below ``RECORDING_MIN_FREE_MB``, closes every call's open
segment cleanly and opens no new one; when the space is back with some room to spare
(``RESUME_MARGIN``), recording goes on as the next segment. The gap is told to the node, per
call, and from there to the consoles, the wall and the audit chain (docs/media.md).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CHECK_EVERY_SECS = 0.5  # well inside the 2 s in which the consoles must say "not recording"
# Recording resumes only once free space is this much above the floor (at least 1 MiB), so a
# disk hovering at the floor does not cut a segment every second.
RESUME_MARGIN = 0.1
MIN_RESUME_MARGIN_BYTES = 1 << 20


@dataclass
class DiskReading:
    free_bytes: int
    low: bool


class DiskSpace:
    """The free space of one directory against a floor, with hysteresis."""

    def __init__(self, directory: Path, *, min_free_bytes: int) -> None:
        self._directory = directory
        self.min_free_bytes = min_free_bytes
        self.resume_free_bytes = min_free_bytes + max(
            int(min_free_bytes * RESUME_MARGIN), MIN_RESUME_MARGIN_BYTES
        )
        self.low = False
        self.free_bytes: int | None = None

    @property
    def enabled(self) -> bool:
        return self.min_free_bytes > 0

    def read(self) -> DiskReading | None:
        """Look now; None when the directory cannot be looked at (it is made on the first
        segment; a volume that is not mounted yet is the writer's failure to report)."""
        directory = self._directory
        while not directory.exists() and directory != directory.parent:
            directory = directory.parent  # the volume it will be made on
        try:
            stat = os.statvfs(directory)
        except OSError:
            logger.warning("the recording volume's free space cannot be read", exc_info=True)
            return None
        free = stat.f_bavail * stat.f_frsize
        self.free_bytes = free
        if self.enabled:
            if self.low:
                self.low = free < self.resume_free_bytes
            else:
                self.low = free < self.min_free_bytes
        return DiskReading(free, self.low)
