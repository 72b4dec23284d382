"""Masking secrets before anything is logged.

:func:`redact` returns a copy of a value with secrets replaced by ``***``:

* in mappings, the value of any key named ``password``, ``token``,
  ``authorization``, ``api_key``, ``secret`` or ``cookie`` (case-insensitive,
  ``-`` and ``_`` alike, with or without a prefix: ``access_token``,
  ``X-Api-Key``, ``Set-Cookie``, ``client_secret``);
* in strings, the credential after ``Bearer``, ``Token`` or ``Basic``
  (``Authorization: Bearer abc`` -> ``Authorization: Bearer ***``), the value of
  ``token=``/``password=``/``secret=``/``api_key=`` (query strings, form bodies)
  and of ``"token": "..."``-style pairs (JSON excerpts in error messages), and
  the ``"input"`` a validation error echoes for such a field.

Lists and tuples are walked; other values are returned as they are. Pure (no I/O), so
every layer may use it: the executor masks every text a target sent (errors,
body excerpts) before a record leaves the engine, and
:mod:`sim_engine.observe.logs` masks every line of ``log.jsonl``. The old import path
:mod:`sim_engine.observe.redact` still works.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "SECRET_KEYS", "is_secret_key", "mask_known", "redact", "redact_text"]

MASK = "***"
"""What a secret is replaced with."""

SECRET_KEYS = frozenset({"password", "token", "authorization", "api_key", "secret", "cookie"})
"""Key names whose values are always masked (see :func:`is_secret_key`)."""

_KEY_WORDS = "password|passwd|token|authorization|api_key|apikey|secret|cookie"
_SCHEME = re.compile(r"(?i)\b(bearer|token|basic)\s+([^\s\"',;]+)")
_ASSIGN = re.compile(
    rf"(?i)(\b[\w-]*(?:{_KEY_WORDS})=)[^&\s#\"',;]+",
)
_JSON_PAIR = re.compile(  # a value cut short by an excerpt's end is masked too
    rf"(?i)(\"[\w-]*(?:{_KEY_WORDS})\"\s*:\s*\")(?:[^\"\\]|\\.)*(\"|$)",
)
# A validation error echoing the input of a secret field (FastAPI/pydantic:
# {"loc":["body","password"],"msg":"...","input":"hunter2"}).
_ECHOED_INPUT = re.compile(
    rf"(?i)(\"loc\"\s*:\s*\[[^\]]*\"[\w-]*(?:{_KEY_WORDS})\"\s*\][^{{}}]*?\"input\"\s*:\s*)"
    r"(\"(?:[^\"\\]|\\.)*(?:\"|$)|[^,}\]]+)"
)
_HINTS = ("token", "bearer", "basic", "passw", "secret", "cookie", "authoriz", "key")
"""Lower-case words without which :func:`redact_text` has nothing to do (a fast pre-check)."""


@functools.lru_cache(maxsize=4096)  # log lines repeat the same few keys
def is_secret_key(key: object) -> bool:
    """Return True when a mapping key names a secret (``Password``, ``X-Api-Key``, ...)."""
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    if name in SECRET_KEYS:
        return True
    return any(name.endswith("_" + word) for word in SECRET_KEYS)


def _looks_like_credential(text: str) -> bool:
    """True for ``abc123...``-like words; False for ``expired`` or ``information``."""
    if len(text) >= 16:
        return True
    if len(text) < 6:
        return False
    return (
        any(c.isdigit() for c in text)
        or "=" in text
        or (any(c.isupper() for c in text) and any(c.islower() for c in text))
    )


def _scheme(match: re.Match[str]) -> str:
    word, credential = match.group(1), match.group(2)
    # Bearer is always followed by a credential; Token and Basic are also plain
    # words ("Token expired"), masked only before something credential-like.
    if word.lower() == "bearer" or _looks_like_credential(credential):
        return f"{word} {MASK}"
    return match.group(0)


def redact_text(text: str) -> str:
    """Return ``text`` with credentials masked (see the module docstring)."""
    lower = text.lower()
    for hint in _HINTS:
        if hint in lower:
            break
    else:
        return text
    text = _SCHEME.sub(_scheme, text)
    text = _ASSIGN.sub(lambda m: m.group(1) + MASK, text)
    text = _JSON_PAIR.sub(lambda m: m.group(1) + MASK + m.group(2), text)
    return _ECHOED_INPUT.sub(lambda m: m.group(1) + f'"{MASK}"', text)


def mask_known(text: str, secrets: Iterable[str | None]) -> str:
    """Return ``text`` with every occurrence of each known secret replaced by ``***``.

    Catches what :func:`redact_text`'s patterns cannot: a token or password a
    target echoes as a bare word (``session a1b2c3... expired``), also when an
    excerpt's end (``…``) cuts it short. Values under 4 characters (and None) are
    ignored: masking them would mangle the text.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
        text = _mask_cut(text, secret)
    return text


def _mask_cut(text: str, secret: str) -> str:
    """Mask the start of ``secret`` (4 characters or more) where it ends a cut ``text``."""
    if not text.endswith("…"):
        return text
    body = text[:-1]
    for size in range(min(len(secret) - 1, len(body)), 3, -1):
        if body.endswith(secret[:size]):
            return body[:-size] + MASK + "…"
    return text


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with secrets masked: mappings, lists, tuples and strings.

    The input is never modified. Values under a secret key become ``"***"``
    whatever their type (None stays None: there is nothing to hide).
    """
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if kind is int or kind is float or kind is bool or value is None:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (MASK if v is not None else None) if is_secret_key(k) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    return value
