"""Swagger 2.0 documents, converted to OpenAPI 3.0 by swagger2openapi (npm, Mermade's oas-kit).

No maintained Python library converts Swagger 2.0 offline (prance's ``convert``
posts the document to a web service), so the import runs the ``swagger2openapi``
command of the npm package of that name (7.x; BSD-3-Clause), the converter most
tools use. It is looked up, in order, as:

1. the command in the ``SIM_ENGINE_SWAGGER2OPENAPI`` environment variable;
2. ``swagger2openapi`` on ``PATH`` (``npm install -g swagger2openapi``);
3. ``tools/swagger2openapi/node_modules/.bin/swagger2openapi`` in a source
   checkout (``scripts/test-deps.sh`` runs ``npm ci`` there).

It runs without ``--resolve``: references to other files or URLs are not fetched
(nothing leaves the machine), and with ``--patch --warnOnly``: small errors of the
source are fixed rather than refused. Part of :mod:`sim_engine.api.openapi` (internal).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sim_engine.api.openapi.errors import OpenApiError

__all__ = [
    "CONVERTER_ENV",
    "CONVERT_TIMEOUT_S",
    "SwaggerConversionError",
    "convert_swagger",
    "find_converter",
]

CONVERTER_ENV = "SIM_ENGINE_SWAGGER2OPENAPI"
"""Environment variable naming the ``swagger2openapi`` command to run."""

CONVERT_TIMEOUT_S = 60.0
"""Wall seconds allowed for one conversion."""

_CHECKOUT_BIN = Path("tools", "swagger2openapi", "node_modules", ".bin", "swagger2openapi")
_INSTALL_HINT = (
    "install it with `npm install -g swagger2openapi` (or `npm ci` in "
    f"tools/swagger2openapi of a source checkout), or set {CONVERTER_ENV}"
)


class SwaggerConversionError(OpenApiError):
    """A Swagger 2.0 document could not be converted (one line, naming the source)."""


def find_converter() -> str | None:
    """The ``swagger2openapi`` command to run (None: not installed; see the module doc)."""
    named = os.environ.get(CONVERTER_ENV)
    if named:
        return named
    on_path = shutil.which("swagger2openapi")
    if on_path:
        return on_path
    for parent in Path(__file__).resolve().parents:
        candidate = parent / _CHECKOUT_BIN
        if candidate.is_file():
            return str(candidate)
    return None


def convert_swagger(doc: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Convert a Swagger 2.0 document to OpenAPI 3.0 with ``swagger2openapi``.

    Args:
        doc: the parsed Swagger 2.0 document (``swagger: "2.0"``).
        source: where it came from (for messages).

    Returns:
        The OpenAPI 3.0 document (``$ref`` s kept; ``#/definitions/X`` become
        ``#/components/schemas/X``; ``host``, ``basePath`` and ``schemes`` become
        ``servers``; body parameters ``requestBody``; ``securityDefinitions``
        ``components.securitySchemes``).

    Raises:
        SwaggerConversionError: the converter is not installed, fails, times out
            (:data:`CONVERT_TIMEOUT_S` wall seconds) or prints something that is not
            an OpenAPI document.
    """
    command = find_converter()
    if command is None:
        raise SwaggerConversionError(
            f"{source}: Swagger 2.0 is converted to OpenAPI 3 by swagger2openapi, which is "
            f"not installed: {_INSTALL_HINT}"
        )
    with tempfile.TemporaryDirectory(prefix="sim-engine-swagger-") as work:
        path = Path(work, "swagger.json")
        path.write_text(json.dumps(doc), encoding="utf-8")
        try:
            done = subprocess.run(
                [command, str(path), "--patch", "--warnOnly"],
                capture_output=True,
                timeout=CONVERT_TIMEOUT_S,
                check=False,
                stdin=subprocess.DEVNULL,
                cwd=work,
            )
        except FileNotFoundError:
            raise SwaggerConversionError(
                f"{source}: cannot run swagger2openapi ({command}): {_INSTALL_HINT}"
            ) from None
        except subprocess.TimeoutExpired:
            raise SwaggerConversionError(
                f"{source}: swagger2openapi did not finish in {CONVERT_TIMEOUT_S:g} s"
            ) from None
        except OSError as exc:
            raise SwaggerConversionError(
                f"{source}: cannot run swagger2openapi ({command}): {exc.strerror or exc}"
            ) from None
    return _converted(done, source)


def _converted(done: subprocess.CompletedProcess[bytes], source: str) -> dict[str, Any]:
    """The document ``swagger2openapi`` printed (errors: its first meaningful line)."""
    if done.returncode != 0:
        lines = [ln.strip() for ln in done.stderr.decode("utf-8", "replace").splitlines()]
        reason = next((ln for ln in lines if ln and not ln.startswith("at ")), "")
        raise SwaggerConversionError(
            f"{source}: swagger2openapi could not convert it (exit {done.returncode})"
            + (f": {reason[:200]}" if reason else "")
        )
    try:
        converted = json.loads(done.stdout.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SwaggerConversionError(
            f"{source}: swagger2openapi printed something that is not JSON"
        ) from None
    if not isinstance(converted, dict) or "openapi" not in converted:
        raise SwaggerConversionError(f"{source}: swagger2openapi gave no OpenAPI document")
    return converted
