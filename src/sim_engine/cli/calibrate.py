"""``sim-engine calibrate LOG -o scenario.yaml``: a scenario fitted to a real event log.

Exit codes: 0 the simulated scenario meets every tolerance; 1 it misses one (the
scenario is written all the same) or the output cannot be written; 2 bad input
(missing or empty file, no time column, unparseable times, one user only, bad option).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sim_engine.cli.common import _fail, cli
from sim_engine.cli.realism import _names, log_options

if TYPE_CHECKING:
    from sim_engine.realism.calibrate import Calibration

__all__ = ["calibrate_command"]

_LABELS = {
    "hourly_l1": "hourly shares, L1",
    "burstiness_median": "burstiness B, median",
    "gini_events": "Gini of events per user",
    "d30": "retention D30",
}


def _fmt(x: float | None, pct: bool) -> str:
    if x is None:
        return "—"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def _table(result: Calibration) -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    for c in result.checks:
        pct = c.name == "d30"
        log = "" if c.name == "hourly_l1" else _fmt(c.log, pct)
        sim = "" if c.name == "hourly_l1" else _fmt(c.simulated, pct)
        dist = _fmt(c.distance, pct)
        tol = f"≤ {_fmt(c.tolerance, pct)}"
        verdict = "FAIL" if not c.passed else ("n/a" if c.distance is None else "pass")
        rows.append((_LABELS[c.name], log, sim, dist, tol, verdict))
    return rows + _context(result)


_CONTEXT: tuple[tuple[str, str, bool], ...] = (
    ("users", "users", False),
    ("events", "events", False),
    ("events per session", "session_mean_events", False),
    ("single-event sessions", "session_single_share", True),
    ("retention D1", "d1", True),
    ("retention D7", "d7", True),
    ("Gini of writes per user", "gini_writes", False),
    ("weekend / weekday", "weekend_weekday", False),
)
"""Facts shown beside the checks, for context (no tolerance)."""


def _context(result: Calibration) -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    for label, attr, pct in _CONTEXT:
        a, b = getattr(result.real, attr), getattr(result.simulated, attr)
        if a is None and b is None:
            continue
        if isinstance(a, int) and isinstance(b, int):
            rows.append((label, f"{a:,}", f"{b:,}", "", "", ""))
            continue
        dist = _fmt(None if a is None or b is None else b - a, pct)
        rows.append((label, _fmt(a, pct), _fmt(b, pct), dist, "", ""))
    return rows


def _header(result: Calibration, source: str) -> str:
    p, r, s = result.params, result.real, result.simulated
    now = datetime.now(timezone.utc)
    lines = [
        f"Calibrated by `sim-engine calibrate` from {source}",
        f"on {now:%Y-%m-%d %H:%M} UTC: {r.events:,} events of {r.users:,} users "
        f"over {r.span_days:,.1f} days; simulated {s.events:,} events of {s.users:,} users.",
        f"Fitted: return {p.return_p:.3f}/day, churn hazard {p.hazard_first_day:.3f}·day^-"
        f"{p.hazard_decay:g}, activity sigma {p.activity_sigma:.2f}, posting sigma "
        f"{p.posting_sigma:.2f}, follow-up {p.follow_p:.2f} (median {p.follow_median_s:,.0f} s), "
        f"quiet spells {p.quiet_p:.4f}/day.",
        *result.notes,
        "Comparison: "
        + "; ".join(
            f"{_LABELS[c.name]} {_fmt(c.distance, c.name == 'd30')} "
            f"({'FAIL' if not c.passed else 'n/a' if c.distance is None else 'pass'})"
            for c in result.checks
        ),
        "docs/realism.md#calibrate-to-a-real-log says what each figure means.",
    ]
    return "".join(f"# {line}\n" for line in lines)


def _write(path: str, result: Calibration, source: str) -> None:
    import yaml

    text = _header(result, source) + yaml.safe_dump(result.data, sort_keys=False, width=100)
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"{path}: cannot write the scenario: {exc.strerror}", 1)


def _show(result: Calibration, out: str, as_json: bool) -> None:
    if as_json:
        doc = {
            "scenario": out,
            "passed": result.passed,
            "rounds": result.rounds,
            "checks": [
                {**{k: getattr(c, k) for k in ("name", "log", "simulated", "distance")},
                 "tolerance": c.tolerance, "passed": c.passed}
                for c in result.checks
            ],
            "notes": list(result.notes),
            "facts": {"log": result.real.to_dict(), "simulated": result.simulated.to_dict()},
        }  # fmt: skip
        click.echo(json.dumps(doc, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Calibrated scenario {out}: log vs simulated", title_justify="left")
    for name in ("fact", "log", "simulated", "distance", "tolerance", ""):
        table.add_column(name, justify="left" if name == "fact" else "right")
    for row in _table(result):
        table.add_row(*row)
    console = Console()
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}")
    verdict = "meets every tolerance" if result.passed else "misses a tolerance (exit 1)"
    console.print(f"{result.simulated.events:,} simulated events in {result.rounds} round(s): "
                  f"{verdict}")  # fmt: skip


def _progress(round_: int, score: float | None) -> None:
    what = "under two users" if score is None else f"worst distance / tolerance {score:.2f}"
    click.echo(f"round {round_}: {what}", err=True)


@cli.command("calibrate")
@click.argument("log", metavar="LOG")
@click.option("-o", "--out", required=True, help="The scenario YAML file to write.")
@log_options
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=1, show_default=True,
              help="Seed of the scenario and of the simulations.")  # fmt: skip
@click.option("--rounds", type=click.IntRange(1, 50), default=10, show_default=True,
              help="Simulate-and-correct rounds at most.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def calibrate_command(
    log: str,
    out: str,
    user_col: str | None,
    time_col: str | None,
    action_col: str | None,
    tz_col: str | None,
    time_unit: str | None,
    write_actions: str | None,
    read_actions: str | None,
    seed: int,
    rounds: int,
    as_json: bool,
) -> None:
    """Fit a scenario to LOG, simulate it for LOG's span and users, and compare.

    LOG is read as `sim-engine realism` reads it. Writes the scenario to --out and
    prints hourly L1, ΔB median, ΔGini and ΔD30 against their tolerances; exits 1
    when one is missed. Details: docs/realism.md#calibrate-to-a-real-log.
    """
    from sim_engine.realism.calibrate import CalibrateOptions, calibrate
    from sim_engine.realism.estimators import RealismInputError
    from sim_engine.realism.readers import LogError, LogOptions, read_log

    options = LogOptions(user_col, time_col, action_col, tz_col, time_unit)
    fit = CalibrateOptions(_names(write_actions), _names(read_actions), seed=seed, rounds=rounds)
    try:
        result = calibrate(read_log(log, options), fit, _progress)
    except (LogError, RealismInputError) as exc:
        _fail(str(exc) if str(exc).startswith(log) else f"{log}: {exc}", 2)
    _write(out, result, log)
    _show(result, out, as_json)
    if not result.passed:
        raise SystemExit(1)
