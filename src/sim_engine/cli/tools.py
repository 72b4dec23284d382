"""The other commands: init, validate, demo-server, kill, cleanup, report, ctl."""

from __future__ import annotations

import contextlib
import errno
import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from sim_engine.cli.common import (
    _fail,
    _load_with_env,
    _target,
    cli,
)
from sim_engine.engine.clock import parse_speed
from sim_engine.model.safety import check_kill_file
from sim_engine.model.settings_spec import check_target_url

__all__ = ["cleanup", "ctl", "demo_server", "init", "kill", "report", "validate"]


@cli.command()
@click.option(
    "--from-openapi",
    "source",
    required=True,
    metavar="FILE_OR_URL",
    help="OpenAPI 3.0/3.1 or Swagger 2.0 document, YAML or JSON: a file or a loopback http(s) URL.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default="scenario.yaml",
    show_default=True,
    help="Scenario file to write.",
)
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
@click.option(
    "--auth-prefix",
    metavar="WORD",
    help="Word before the token in the Authorization header (Token, JWT...); default: "
    "what the document shows, else Bearer.",
)
@click.option(
    "--api-key",
    metavar="KEY",
    help="A key every request sends (scheme api_key), e.g. 'token T' for Jupyter Server.",
)
@click.option(
    "--api-key-header",
    metavar="NAME",
    help="The header --api-key goes in (default: the document's apiKey header, else "
    "Authorization).",
)
@click.option(
    "--include-destructive",
    is_flag=True,
    help="Keep DELETEs of whole collections, flush/reset, admin and permission endpoints.",
)
@click.option(
    "--include-ops",
    is_flag=True,
    help="Keep operational endpoints (health, version, metadata, __api__...) and what "
    "starts or stops server processes (kernels, terminals...).",
)
def init(
    source: str,
    output: str,
    force: bool,
    auth_prefix: str | None,
    api_key: str | None,
    api_key_header: str | None,
    include_destructive: bool,
    include_ops: bool,
) -> None:
    """Write a starter scenario for the API an OpenAPI document describes."""
    from sim_engine.api.openapi import (
        ImportOptions,
        OpenApiError,
        OpenApiFetchError,
        import_openapi,
        write_scenario,
    )

    if Path(output).exists() and not force:
        _fail(f"{output}: exists (use --force to overwrite)", 2)
    if "\x00" in source:
        _fail(f"--from-openapi: {source!r} contains a NUL character", 2)
    if source.startswith(("http://", "https://")):
        try:
            check_target_url(source)
        except ValueError as exc:
            _fail(f"--from-openapi: {exc}", 2)
    if auth_prefix is not None and not re.fullmatch(
        r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}", auth_prefix
    ):
        _fail(f"--auth-prefix: {auth_prefix!r} is not one word (an HTTP auth scheme name)", 2)
    _check_key_options(api_key, api_key_header)
    options = ImportOptions(auth_prefix, include_destructive, include_ops, api_key, api_key_header)
    try:
        result = import_openapi(source, options=options)
    except OpenApiFetchError as exc:
        _fail(str(exc), 1)
    except OpenApiError as exc:
        _fail(str(exc), 2)
    try:
        write_scenario(result, output, force=True)
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}", 1)
    click.echo(f"{output}: {result.summary()}; edit the persona weights, then run it")
    for line in result.report():
        click.echo(f"  {line}")


def _check_key_options(api_key: str | None, header: str | None) -> None:
    """Exit 2 unless ``--api-key`` is one printable line and ``--api-key-header`` a header name."""
    if api_key is not None and (not api_key or any(ord(c) < 32 or ord(c) == 127 for c in api_key)):
        _fail("--api-key: empty, or holds a control character (a header value is one line)", 2)
    if header is not None and not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}", header):
        _fail(f"--api-key-header: {header!r} is not an HTTP header name", 2)
    if header is not None and api_key is None:
        _fail("--api-key-header needs --api-key", 2)


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
def validate(path: str) -> None:
    """Check a scenario file as ``run`` would use it, with the environment's
    SIM_ENGINE__SECTION__FIELD variables applied; exit 2 with the field path if invalid."""
    import os

    from sim_engine.runs.envconfig import ENV_PREFIX

    scenario = _load_with_env(path)
    shares = scenario.persona_shares()
    total = sum(shares.values())
    mix = ", ".join(f"{name} {100 * share / total:.0f}%" for name, share in shares.items())
    env = sorted(k for k in os.environ if k.upper().startswith(ENV_PREFIX))
    applied = f" with {', '.join(env)}" if env else ""
    click.echo(f"{path}: ok{applied} ({scenario.name}: {len(shares)} personas: {mix})")


def _demo_db(_ctx: Any, _param: Any, value: str) -> str:
    """``--db``: ``:memory:`` or an SQLite file that opens (not a directory, not another file)."""
    import sqlite3

    if value == ":memory:":
        return value
    path = Path(value)
    if path.is_dir():
        raise click.BadParameter(f"{value} is a directory, not an SQLite file")
    if not path.parent.is_dir():
        raise click.BadParameter(f"{value}: its directory {path.parent} does not exist")
    try:
        with contextlib.closing(sqlite3.connect(value)) as con:
            con.execute("PRAGMA schema_version")
    except sqlite3.Error as exc:
        raise click.BadParameter(f"{value}: cannot open as an SQLite database: {exc}") from None
    return value


def _check_bindable(host: str, port: int) -> None:
    """Exit 2 when ``host`` is no address of this machine, 1 when ``port`` is taken."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        _fail(f"--host {host!r}: not an address of this machine: {exc}", 2)
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        code = 2 if exc.errno == errno.EADDRNOTAVAIL else 1
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", code)


@cli.command("demo-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--db",
    default=":memory:",
    show_default=True,
    callback=_demo_db,
    help="SQLite file (or :memory:).",
)
@click.option(
    "--error-rate", type=click.FloatRange(0, 1), help="Injected fault: probability of a 5xx."
)
@click.option(
    "--error-status", type=click.IntRange(500, 599), help="Status of injected errors [503]."
)
@click.option(
    "--latency-ms",
    metavar="SPEC",
    help="Injected latency: MS, uniform:MIN:MAX, exponential:MEAN or lognormal:MEDIAN:SIGMA.",
)
@click.option(
    "--rate-limit-burst",
    metavar="EVERY_S:LENGTH_S[:RETRY_AFTER_S]",
    help="Injected 429 bursts with Retry-After.",
)
@click.option(
    "--rate-limit-rate", type=click.FloatRange(0, 1), help="Injected fault: probability of a 429."
)
@click.option(
    "--drop-rate",
    type=click.FloatRange(0, 1),
    help="Injected fault: probability of closing the connection without an answer.",
)
@click.option("--fault-seed", type=int, help="Seed of the fault random generators.")
def demo_server(
    host: str,
    port: int,
    db: str,
    error_rate: float | None,
    error_status: int | None,
    latency_ms: str | None,
    rate_limit_burst: str | None,
    rate_limit_rate: float | None,
    drop_rate: float | None,
    fault_seed: int | None,
) -> None:
    """Run the built-in demo social API alone.

    Fault flags override the JSON config in $SIM_ENGINE_DEMO_FAULTS field by field; at run
    time GET/PUT/DELETE /admin/faults read and replace it (see docs/demo-server.md).
    """
    from sim_engine.demo import serve
    from sim_engine.demo.faults import FaultConfigError, resolve_faults

    try:
        faults = resolve_faults(
            error_rate=error_rate,
            error_status=error_status,
            latency_ms=latency_ms,
            rate_limit_burst=rate_limit_burst,
            rate_limit_rate=rate_limit_rate,
            drop_rate=drop_rate,
            seed=fault_seed,
        )
    except FaultConfigError as exc:
        _fail(str(exc), 2)
    _check_bindable(host, port)
    click.echo(f"demo API on http://{host}:{port} (OpenAPI at /openapi.json); Ctrl-C stops")
    if faults is not None and faults.active:
        click.echo(f"injected faults: {faults.model_dump_json(exclude_defaults=True)}")
    serve(host, port, db, faults)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
def kill(run_dir: str) -> None:
    """Stop a running simulation at once (creates the kill file in RUN_DIR)."""
    path = Path(run_dir)
    if not (path / "state.db").exists():
        _fail(f"{run_dir}: not a run directory (no state.db)", 2)
    name = "KILL"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        name = json.loads((path / "scenario.json").read_text("utf-8"))["safety"]["kill_file"]
    try:
        check_kill_file(str(name))
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text("stop\n", encoding="utf-8")
    except ValueError as exc:
        _fail(f"{path / 'scenario.json'}: safety.kill_file: {exc}", 2)
    except OSError as exc:
        _fail(f"cannot write the kill file {path / name}: {exc.strerror or exc}", 1)
    click.echo(f"{path / name} written: the run stops within a second")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option(
    "--target",
    "target_url",
    callback=_target,
    help="Base URL (default: the one the run used).",
)
def cleanup(run_dir: str, dry_run: bool, target_url: str | None) -> None:
    """Delete through the API everything the run in RUN_DIR created (children before
    parents, users last); print counts per kind and what stays (exit 1 when anything does)."""
    from sim_engine.runs.cleanup import CleanupError, cleanup_run

    try:
        report = cleanup_run(Path(run_dir), target_url=target_url, dry_run=dry_run)
    except CleanupError as exc:
        _fail(str(exc), exc.exit_code)
    click.echo("\n".join(report.lines(dry_run)))
    if not report.complete:
        sys.exit(1)


@cli.command()
@click.argument("run_dir", type=click.Path())
def report(run_dir: str) -> None:
    """Write RUN_DIR/report.html: one self-contained page of charts of a finished run."""
    from sim_engine.observe.report import NotARunDirError, ReportError, write_report

    try:
        path = write_report(Path(run_dir))
    except NotARunDirError as exc:
        _fail(str(exc), 2)
    except ReportError as exc:
        _fail(str(exc), 1)
    click.echo(str(path))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument(
    "command", type=click.Choice(["pause", "resume", "stop", "status", "speed", "page"])
)
@click.argument("value", required=False)
def ctl(run_dir: str, command: str, value: str | None) -> None:
    """Control the run writing to RUN_DIR: pause, resume, stop, status, or speed N (or max);
    page prints the URL of the run's web page (with its token)."""
    from sim_engine.observe.control import ControlError, format_status, page_url, send_command

    if command == "page":
        try:
            send_command(Path(run_dir), "status")  # the run answers: the page is there
            click.echo(page_url(Path(run_dir)))
        except ControlError as exc:
            _fail(str(exc), 1)
        return
    if command == "speed":
        if value is None:
            _fail("speed needs a value: a positive number (60, 3600) or max", 2)
        try:
            parse_speed(value)
        except ValueError as exc:
            _fail(str(exc), 2)
    elif value is not None:
        _fail(f"{command} takes no value (got {value!r})", 2)
    try:
        status = send_command(Path(run_dir), command, value)
    except ControlError as exc:
        _fail(str(exc), 1)
    line = format_status(status)
    click.echo(line if command == "status" else f"{command}: {line}")
