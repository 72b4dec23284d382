"""The browser tier: page flows in Chromium (Playwright) as a target (see docs/browser.md).

Public API:
    BrowserTarget: wraps the run's target; browser users' mapped actions run flows.
    BrowserPool: one Chromium process, a bounded pool of contexts, the loopback guard.
    BrowserUnavailableError: Chromium cannot be started.
    Screenshots: failed steps' screenshots, bounded in number.
    uses_browser(seed, user_id, share) -> bool: the tier a user is in.
"""

from __future__ import annotations

from sim_engine.targets.browser.pool import BrowserPool, BrowserUnavailableError, guarded_host
from sim_engine.targets.browser.shots import Screenshots
from sim_engine.targets.browser.target import BrowserTarget, uses_browser

__all__ = [
    "BrowserPool",
    "BrowserTarget",
    "BrowserUnavailableError",
    "Screenshots",
    "guarded_host",
    "uses_browser",
]
