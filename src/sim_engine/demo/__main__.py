"""Command-line entry point: ``python -m sim_engine.demo --host H --port N --db PATH [faults]``.

Runs the demo social API with uvicorn (log level ``warning``, access log off) until
interrupted. Injected faults come from the ``SIM_ENGINE_DEMO_FAULTS`` environment variable
(JSON) and the fault flags, the flags winning field by field (see ``docs/demo-server.md``).

Launched by :class:`~sim_engine.demo.launcher.DemoServer`, it exits when its launcher dies
(:mod:`sim_engine.demo.lifeline`), whatever kills the launcher.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from sim_engine.demo.app import serve
from sim_engine.demo.faults import FAULTS_ENV, FaultConfigError, resolve_faults
from sim_engine.demo.lifeline import bind_to_parent


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the fault-injection flags (``--error-rate`` ...) to ``parser``."""
    group = parser.add_argument_group(
        "injected faults", f"override the JSON config in ${FAULTS_ENV} field by field"
    )
    group.add_argument(
        "--error-rate", type=float, metavar="P", help="probability (0..1) of a 5xx answer"
    )
    group.add_argument(
        "--error-status", type=int, metavar="CODE", help="status of injected errors (503)"
    )
    group.add_argument(
        "--latency-ms",
        metavar="SPEC",
        help="added latency: MS, uniform:MIN:MAX, exponential:MEAN, lognormal:MEDIAN:SIGMA",
    )
    group.add_argument(
        "--rate-limit-burst",
        metavar="EVERY_S:LENGTH_S[:RETRY_AFTER_S]",
        help="429 bursts: every EVERY_S seconds, LENGTH_S seconds long",
    )
    group.add_argument(
        "--rate-limit-rate", type=float, metavar="P", help="probability (0..1) of a 429 answer"
    )
    group.add_argument(
        "--drop-rate",
        type=float,
        metavar="P",
        help="probability (0..1) of closing the connection without an answer",
    )
    group.add_argument("--fault-seed", type=int, metavar="N", help="seed of the fault generators")


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
    add_fault_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and serve the demo API (blocking).

    Args:
        argv (Sequence[str] | None): Arguments without the program name; None means
            ``sys.argv[1:]``.

    Raises:
        SystemExit: With code 2 on a bad argument or a bad ``SIM_ENGINE_DEMO_FAULTS``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        faults = resolve_faults(
            error_rate=args.error_rate,
            error_status=args.error_status,
            latency_ms=args.latency_ms,
            rate_limit_burst=args.rate_limit_burst,
            rate_limit_rate=args.rate_limit_rate,
            drop_rate=args.drop_rate,
            seed=args.fault_seed,
        )
    except FaultConfigError as exc:
        parser.error(str(exc))
    serve(host=args.host, port=args.port, db_path=args.db, faults=faults)


if __name__ == "__main__":
    bind_to_parent()  # first: a launcher that died during our start-up leaves no server
    main()
