"""``sim-engine schema``: the scenario's JSON Schema, for editors and CI checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sim_engine.cli.common import _fail, cli

__all__ = ["scenario_schema", "schema"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_PAIR = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2}


def _short_forms() -> dict[str, dict[str, Any]]:
    """Models that also take a shorter form: a range as ``[low, high]``, a browser step
    as ``{KIND: ...}`` (exactly one step kind as its key)."""
    from sim_engine.model.browser_spec import STEP_KINDS

    step = {"type": "object", "oneOf": [{"required": [kind]} for kind in STEP_KINDS]}
    return {"DayRange": _PAIR, "StepSpec": step}


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scenario file, from the pydantic model.

    No section is required at the top: a file's missing sections come from the
    built-in scenario (``read_scenario_data``). Checks the schema cannot express
    (cross-field rules, plugin names) are ``sim-engine validate``'s.
    """
    from sim_engine.model.scenario import Scenario

    schema = Scenario.model_json_schema()
    schema.pop("required", None)
    defs = schema.get("$defs", {})
    for name, short in _short_forms().items():
        if name in defs:
            defs[name] = {"anyOf": [defs[name], short]}
    return {"$schema": _DIALECT, **schema, "title": "sim-engine scenario"}


@cli.command()
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE instead of stdout."
)
def schema(output: str | None) -> None:
    """Print the scenario's JSON Schema (for an editor: see docs/always-on.md)."""
    text = json.dumps(scenario_schema(), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}", 1)
