"""Screenshots of failed steps: one PNG per failed step under the run's output directory,
bounded in number so that a broken app cannot fill the disk.

Files are named by user, flow and step: ``screenshots/u12-compose-4-click-0007.png``
(the user's id, the flow, the step's place in the flow from 0, its kind, and the
screenshot's number in the run). A resumed run counts the files already there.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Page

__all__ = ["Screenshots"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class Screenshots:
    """Takes at most ``limit`` screenshots into ``directory`` (created at the first one).

    Args:
        directory: where the PNG files go (``OUT/screenshots``).
        limit: the most files the directory may hold (0: none are taken).
        timeout_ms: wall milliseconds a screenshot may take.

    Attributes:
        taken: screenshots in the directory (the run's, and a resumed run's earlier ones).
        skipped: failed steps not shot because the limit was reached.
    """

    def __init__(self, directory: Path, limit: int, timeout_ms: float = 10_000.0) -> None:
        self.directory = directory
        self.limit = limit
        self._timeout_ms = timeout_ms
        self.taken = len(list(directory.glob("*.png"))) if directory.is_dir() else 0
        self.skipped = 0

    async def take(self, page: Page, user_id: int, flow: str, index: int, kind: str) -> str | None:
        """Save the page as it is now; return the file's path relative to the output
        directory (``screenshots/NAME.png``), or None (the limit reached, or the page
        could not be shot: a crashed page). Never raises."""
        if self.taken >= self.limit:
            self.skipped += 1
            return None
        self.taken += 1  # counted before the await: concurrent failures stay in bounds
        name = f"u{user_id}-{_UNSAFE.sub('_', flow)[:60]}-{index}-{kind}-{self.taken:04d}.png"
        path = self.directory / name
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(path), timeout=self._timeout_ms)
        except Exception:  # a page gone, a full disk: the record goes without
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return None
        return f"{self.directory.name}/{name}"
