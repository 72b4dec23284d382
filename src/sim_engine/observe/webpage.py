"""The run's web page (issue 15, must-have 7): the terminal dashboard's content in a
browser, served by the control endpoint behind its token.

``GET /ui/?token=T`` is a static page (``observe/web/index.html``) drawing with
plotly.js, vendored from the ``plotly`` package's own bundled file (no CDN, no
build step); it polls ``GET /ui/data`` every wall second (JSON: simulated time,
state, speed, users known/joined/active and by lifecycle state and persona,
actions, actions per second, latency percentiles, errors by kind, recent activity)
and sends the control endpoint's ``POST /pause``, ``/resume``, ``/speed`` and
``/stop`` with the token. The page reads the token from its URL and sends it as
``Authorization: Bearer``; the control server accepts ``?token=`` only for GETs
under ``/ui/``.

The numbers come from a headless :class:`~sim_engine.observe.dashboard.Dashboard`
(the terminal dashboard's own counters and snapshot) plus a count of errors by kind
(:func:`~sim_engine.observe.prometheus.error_category`), so the terminal, the page
and Prometheus say the same.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections import Counter
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from rich.console import Console

from sim_engine.model.records import ActionRecord, Record
from sim_engine.observe.dashboard import Dashboard
from sim_engine.observe.prometheus import error_category

if TYPE_CHECKING:
    from sim_engine.engine.simulation import Simulation

__all__ = ["PAGE_PREFIX", "PUBLIC_ASSET", "WebPage", "plotly_js"]

PAGE_PREFIX = "/ui/"
"""Where the page lives on the control endpoint."""
PUBLIC_ASSET = PAGE_PREFIX + "plotly.min.js"
"""The one path served without the token: plotly.js, a public library (a ``<script>``
tag cannot send the header)."""


def plotly_js() -> Path:
    """The plotly.js bundle shipped inside the ``plotly`` Python package.

    Raises:
        FileNotFoundError: the installed plotly has no bundled ``plotly.min.js``.
    """
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the plotly package ships no plotly.min.js")
    return path


def _iso(sim_ts: float) -> str:
    return datetime.fromtimestamp(sim_ts, timezone.utc).isoformat(timespec="seconds")


class WebPage:
    """The page's data side: a sink counting records, and the page's three routes.

    Attributes:
        errors: failed actions by kind (``timeout``, ``rate_limited``, ``http_5xx``...).
    """

    def __init__(self) -> None:
        self._dashboard = Dashboard(Console(file=io.StringIO()), keys=False)  # never draws
        self.errors: Counter[str] = Counter()

    def emit(self, record: Record) -> None:
        """Count one record."""
        self._dashboard.emit(record)
        if isinstance(record, ActionRecord) and not record.ok:
            kind = error_category(record)
            if kind is not None:
                self.errors[kind] += 1

    def close(self) -> None:
        """Nothing to release."""

    async def start(self, sim: Simulation | Any) -> None:
        """Read this simulation from now on."""
        await self._dashboard.start(sim)

    def data(self) -> dict[str, Any]:
        """The page's numbers now, as JSON-ready values (see the module docstring)."""
        snap = self._dashboard.snapshot()
        out = dataclasses.asdict(snap)
        out.update(
            sim_time=_iso(snap.sim_now),
            end_s=snap.end_s if math.isfinite(snap.end_s) else None,
            known=snap.users,
            joined=snap.signed_up,
            active=snap.in_session,
            errors=dict(self.errors),
        )
        return out

    def add_routes(self, app: web.Application) -> None:
        """Add ``GET /ui/``, ``/ui/plotly.min.js`` and ``/ui/data`` to ``app``."""
        page = resources.files("sim_engine.observe.web").joinpath("index.html").read_bytes()
        script = plotly_js()

        async def bare(request: web.Request) -> web.Response:
            query = f"?{request.query_string}" if request.query_string else ""
            raise web.HTTPFound(PAGE_PREFIX + query)

        async def index(_request: web.Request) -> web.Response:
            return web.Response(body=page, content_type="text/html", charset="utf-8")

        async def plotly(_request: web.Request) -> web.FileResponse:
            return web.FileResponse(script, headers={"Cache-Control": "max-age=86400"})

        async def data(_request: web.Request) -> web.Response:
            return web.json_response(self.data(), headers={"Cache-Control": "no-store"})

        app.router.add_get(PAGE_PREFIX.rstrip("/"), bare)
        app.router.add_get(PAGE_PREFIX, index)
        app.router.add_get(PUBLIC_ASSET, plotly)
        app.router.add_get(PAGE_PREFIX + "data", data)
