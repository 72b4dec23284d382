"""The built-in demo target of sim-engine: a small social API (FastAPI + SQLite).

Public API:
    create_app(db_path=":memory:") -> fastapi.FastAPI: build the ASGI app (schema included).
    serve(host, port, db_path) -> None: run it with uvicorn (blocking).
    DemoServer: run it as a subprocess on a free local port (context manager).
    DemoServerError: raised when that subprocess fails to start.
"""

from __future__ import annotations

from sim_engine.demo.app import API_TITLE, create_app, serve
from sim_engine.demo.launcher import DemoServer, DemoServerError

__all__ = ["API_TITLE", "DemoServer", "DemoServerError", "create_app", "serve"]
