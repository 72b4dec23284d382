"""Command-line entry point: ``python -m sim_engine.demo --host H --port N --db PATH``.

Runs the demo social API with uvicorn (log level ``warning``, access log off) until
interrupted.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from sim_engine.demo.app import serve


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m sim_engine.demo``."""
    parser = argparse.ArgumentParser(
        prog="python -m sim_engine.demo",
        description="Run the sim-engine demo social API (FastAPI + SQLite).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port to bind (8000)")
    parser.add_argument(
        "--db",
        default=":memory:",
        metavar="PATH",
        help="SQLite database file; ':memory:' (default) keeps everything in RAM",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and serve the demo API (blocking).

    Args:
        argv (Sequence[str] | None): Arguments without the program name; None means
            ``sys.argv[1:]``.
    """
    args = build_parser().parse_args(argv)
    serve(host=args.host, port=args.port, db_path=args.db)


if __name__ == "__main__":
    main()
