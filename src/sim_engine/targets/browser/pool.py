"""One Chromium process and a bounded pool of browser contexts, one per active user.

Playwright for Python (async API) drives Debian's Chromium through
``executable_path``: Playwright's own browser download is never used. The browser is
launched at the first :meth:`BrowserPool.open` and closed by :meth:`BrowserPool.aclose`.
At most ``max_contexts`` contexts are open at once; a user asking for one while all are
taken waits for a slot.

Every context is guarded at its routing layer: a request (navigation or sub-request) to
a host outside loopback and ``allow_hosts`` is aborted (:func:`guarded_host`), and every
request carries the synthetic marker header; the marker cookie is set for the site.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sim_engine.model.safety import SafetyError, check_target_allowed

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Playwright, Route

__all__ = ["BrowserPool", "BrowserUnavailableError", "guarded_host"]

#: A cookie set for the site in every synthetic browser (``sim_synthetic=1``).
MARKER_COOKIE = "sim_synthetic"


class BrowserUnavailableError(RuntimeError):
    """Chromium could not be started (not installed, or not at ``executable_path``)."""


def guarded_host(url: str, allow_hosts: tuple[str, ...]) -> str | None:
    """Return the host a request must not reach, or None when it may go.

    ``http(s)`` URLs are checked like a run's target (loopback, ``localhost`` and
    ``allow_hosts`` only); URLs that leave no machine (``data:``, ``blob:``,
    ``about:``) always go; other schemes (``ws:``, ``ftp:``...) must be local too.
    """
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome-error"):
        return None
    try:
        web = parts.scheme in ("http", "https")
        check_target_allowed(url if web else f"http://{parts.hostname or ''}/", allow_hosts)
    except SafetyError:
        return parts.hostname or url[:60]
    return None


class BrowserPool:
    """One Chromium and at most ``max_contexts`` open contexts.

    Args:
        executable_path: the Chromium binary (Debian's ``/usr/bin/chromium``).
        max_contexts: contexts open at once (>= 1).
        allow_hosts: hosts besides loopback requests may reach (``safety.allow_hosts``).
        headers: extra headers on every request (the synthetic marker, user agent).
        marker_url: the site the marker cookie is set for (None: no cookie).

    Attributes:
        blocked: requests aborted by the guard so far.
        opened: contexts opened so far.
    """

    def __init__(
        self,
        executable_path: str = "/usr/bin/chromium",
        max_contexts: int = 4,
        allow_hosts: tuple[str, ...] = (),
        headers: Mapping[str, str] | None = None,
        marker_url: str | None = None,
    ) -> None:
        self._path = executable_path
        self._slots = asyncio.Semaphore(max_contexts)
        self._allow = allow_hosts
        self.headers = dict(headers or {})
        self._marker_url = marker_url
        self._lock = asyncio.Lock()
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self.blocked = 0
        self.opened = 0

    async def _started(self) -> Browser:
        async with self._lock:
            if self._browser is None:
                from playwright.async_api import Error, async_playwright

                self._pw = await async_playwright().start()
                try:
                    self._browser = await self._pw.chromium.launch(
                        executable_path=self._path,
                        args=["--no-sandbox", "--disable-dev-shm-usage"],
                    )
                except Error as exc:
                    await self._pw.stop()
                    self._pw = None
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else "failed"
                    raise BrowserUnavailableError(
                        f"cannot start Chromium at {self._path}: {first} (apt-get install chromium)"
                    ) from None
            return self._browser

    @property
    def full(self) -> bool:
        """True when every slot is taken: :meth:`open` would wait."""
        return self._slots.locked()

    async def open(self, storage_state: dict[str, Any] | None) -> BrowserContext:
        """Take a slot (waiting for one) and open a guarded context with ``storage_state``
        (cookies and localStorage a context saved before; None: a fresh browser).

        Raises:
            BrowserUnavailableError: Chromium cannot be started.
        """
        await self._slots.acquire()
        try:
            browser = await self._started()
            context = await browser.new_context(
                storage_state=storage_state,  # type: ignore[arg-type]
                extra_http_headers=self.headers,
                service_workers="block",
            )
            await context.route("**/*", self._guard)
            if self._marker_url is not None:
                await context.add_cookies(
                    [{"name": MARKER_COOKIE, "value": "1", "url": self._marker_url}]
                )
        except BaseException:
            self._slots.release()
            raise
        self.opened += 1
        return context

    async def close(self, context: BrowserContext) -> None:
        """Close a context from :meth:`open` and free its slot (never raises)."""
        try:
            await context.close()
        except Exception:  # the browser may be gone already
            pass
        finally:
            self._slots.release()

    async def _guard(self, route: Route) -> None:
        if guarded_host(route.request.url, self._allow) is not None:
            self.blocked += 1
            await route.abort("blockedbyclient")
            return
        await route.continue_()

    async def aclose(self) -> None:
        """Close the browser and stop Playwright (idempotent)."""
        browser, pw = self._browser, self._pw
        self._browser = self._pw = None
        if browser is not None:
            with contextlib.suppress(Exception):
                await browser.close()
        if pw is not None:
            await pw.stop()
