"""The built-in demo target: a small social API built on FastAPI and stdlib ``sqlite3``.

The app exposes users, token authentication, posts, comments and follows. It is what
``sim-engine`` simulates against when no other target is configured, and it is small and
deterministic enough to be driven in-process through :class:`httpx.ASGITransport`.

Design notes:

* The schema is created by :func:`create_app` itself, not in a lifespan handler, because
  ``httpx.ASGITransport`` does not run lifespan events.
* Every endpoint and dependency is ``async def`` and talks to SQLite directly. FastAPI runs
  sync endpoints in a thread pool, which would make in-process runs non-deterministic;
  the SQLite calls are fast enough to run on the event loop.
* Each app owns one ``sqlite3`` connection in autocommit mode (``isolation_level=None``);
  multi-statement writes are wrapped in explicit transactions.
* If a request carries the ``X-Sim-Time`` header (an ISO 8601 date-time), its value is stored
  as ``created_at``/``updated_at`` instead of the wall clock, so simulated runs record
  simulated time.
* A user signed up with the header ``X-Synthetic: true`` is flagged ``is_synthetic``.
* Injected faults (:mod:`sim_engine.demo.faults`) are applied by a :class:`FaultInjector`
  placed outside every other layer, so a dropped connection closes the real socket. Its
  :class:`FaultController` is ``app.state.faults``; ``GET/PUT/DELETE /admin/faults`` read
  and replace its config at run time.
* Server-rendered web pages of the same data (:mod:`sim_engine.demo.pages`, Jinja2
  templates in ``demo/templates/``) are served next to the API for browser sessions.

Layout: the request and response bodies are in :mod:`sim_engine.demo.schemas`, the SQLite
store and password hashing in :mod:`sim_engine.demo.store`, the FastAPI dependencies in
:mod:`sim_engine.demo.deps`, the routes in :mod:`sim_engine.demo.routes_social` and
:mod:`sim_engine.demo.routes_admin`; this module assembles them and re-exports their
public names.

Example:
    >>> import httpx
    >>> from sim_engine.demo.app import create_app
    >>> client = httpx.AsyncClient(
    ...     transport=httpx.ASGITransport(app=create_app()), base_url="http://demo"
    ... )
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp

from sim_engine.demo.faults import FaultConfig, FaultController, FaultInjector
from sim_engine.demo.pages import pages_router
from sim_engine.demo.routes_admin import admin_router
from sim_engine.demo.routes_social import router
from sim_engine.demo.schemas import (
    CommentCreate,
    CommentOut,
    CommentPage,
    ErrorOut,
    FaultCountsOut,
    FollowOut,
    HealthOut,
    LoginIn,
    PostCreate,
    PostOut,
    PostPage,
    PostUpdate,
    StatsOut,
    TokenOut,
    UserCreate,
    UserOut,
)
from sim_engine.demo.store import DemoStore, hash_password, verify_password

__all__ = [
    "API_TITLE",
    "CommentCreate",
    "CommentOut",
    "CommentPage",
    "DemoStore",
    "ErrorOut",
    "FaultCountsOut",
    "FollowOut",
    "HealthOut",
    "LoginIn",
    "PostCreate",
    "PostOut",
    "PostPage",
    "PostUpdate",
    "StatsOut",
    "TokenOut",
    "UserCreate",
    "UserOut",
    "create_app",
    "hash_password",
    "serve",
    "verify_password",
]

API_TITLE = "sim-engine demo social API"
API_VERSION = "1.0.0"


# --------------------------------------------------------------------------------------
# Factory and runner
# --------------------------------------------------------------------------------------


class _DemoAPI(FastAPI):
    """FastAPI with the fault injector wrapped around its whole middleware stack."""

    def build_middleware_stack(self) -> ASGIApp:
        return FaultInjector(super().build_middleware_stack(), self.state.faults)


def create_app(
    db_path: str = ":memory:", faults: FaultConfig | FaultController | None = None
) -> FastAPI:
    """Build the demo social API with its own SQLite connection and schema.

    The schema is created right here (not in a lifespan handler), so the app works when
    called in-process through ``httpx.ASGITransport``. Each call returns an independent app;
    with the default ``":memory:"`` each app has its own private, empty database.

    Args:
        db_path (str): SQLite database file (opened in WAL mode), or ``":memory:"``.
        faults (FaultConfig | FaultController | None): Faults to inject (see
            :mod:`sim_engine.demo.faults`); None starts with none, and they can still be
            turned on at run time through ``PUT /admin/faults``. Pass a
            :class:`FaultController` to control the clock and sleep (tests).

    Returns:
        fastapi.FastAPI: The ASGI app. Its store is at ``app.state.store`` (:class:`DemoStore`)
        and its fault controller at ``app.state.faults`` (:class:`FaultController`).

    Raises:
        sqlite3.Error: If the database cannot be opened or initialised.
    """
    app = _DemoAPI(
        title=API_TITLE,
        version=API_VERSION,
        description=(
            "A small social API (users, posts, comments, follows) used as the built-in "
            "target of sim-engine. Send `X-Sim-Time` to store simulated timestamps and "
            "`X-Synthetic: true` at sign-up to flag synthetic users. `/admin/faults` "
            "turns injected faults (errors, latency, 429 bursts, dropped connections) on "
            "and off."
        ),
    )
    app.state.faults = faults if isinstance(faults, FaultController) else FaultController(faults)
    app.state.store = DemoStore(db_path)
    app.include_router(router)
    app.include_router(admin_router)
    app.include_router(pages_router)
    return app


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    db_path: str = ":memory:",
    faults: FaultConfig | None = None,
) -> None:
    """Run the demo API with uvicorn until interrupted (blocking).

    Args:
        host (str): Interface to bind.
        port (int): TCP port to bind.
        db_path (str): SQLite database file, or ``":memory:"``.
        faults (FaultConfig | None): Faults to inject from the start; None for none.

    Raises:
        sqlite3.Error: If the database cannot be opened.
        SystemExit: If uvicorn cannot bind the address.
    """
    import uvicorn

    app = create_app(db_path, faults)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        app.state.store.close()
