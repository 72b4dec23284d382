"""The ``sim-engine`` command line (Click). The ``cli`` package is the only one that prints
to the user or exits.

Exit codes: 0 success; 1 runtime failure (unreachable target, demo server
failed, output not writable); 2 bad input (malformed scenario, bad option);
130 interrupted before the simulation could start. The commands live in
``cli/run.py`` (``run``), ``cli/load.py`` (``load``) and ``cli/tools.py`` (the
others); importing them registers them on the :data:`cli` group.
"""

from __future__ import annotations

from sim_engine.cli import calibrate as _calibrate_command  # noqa: F401  (registers ``calibrate``)
from sim_engine.cli import generate as _generate_command  # noqa: F401  (registers ``generate``)
from sim_engine.cli import load as _load_command  # noqa: F401  (registers ``load``)
from sim_engine.cli import realism as _realism_command  # noqa: F401  (registers ``realism``)
from sim_engine.cli import run as _run_commands  # noqa: F401  (registers ``run``)
from sim_engine.cli import schema as _schema_command  # noqa: F401  (registers ``schema``)
from sim_engine.cli import tools as _tool_commands  # noqa: F401  (registers the others)
from sim_engine.cli.common import _use_dashboard, cli

__all__ = ["_use_dashboard", "cli", "main"]


def main() -> None:
    """Entry point of the ``sim-engine`` console script."""
    cli(prog_name="sim-engine")
