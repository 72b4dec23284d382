"""Request templates of an ``api`` section: placeholders, generators and JSON paths.

Pure functions, no I/O. A template is any JSON-like value (strings, numbers,
lists, dicts) whose strings may hold

* ``{name.field}`` placeholders, filled from a *context*: a mapping of names
  to mappings of fields (``user`` -> ``{id, username, email, name, password}``,
  and one entry per item an action picked, e.g. ``post`` -> ``{id, author}``);
* ``{{generator}}`` or ``{{generator:args}}`` generators (see :data:`GENERATOR_HELP`).

A string that is exactly one placeholder or one generator keeps the value's
type (``"{post.id}"`` gives the int ``7``, ``"{{bool}}"`` a bool); inside a
longer string values are formatted (``true``/``false`` for booleans, ``""``
for None, compact JSON for lists and dicts). Dict keys are templates too (always
rendered as strings). :func:`render_path` URL-quotes every value it fills in.

Generated text comes from a :class:`ContentPool`: Mimesis fills pools of
words, sentences, names, cities, phones and colours once (seeded), and each
value is then drawn with the caller's :class:`random.Random`, so rendering is
deterministic for a seed and a sequence of draws, and costs a few microseconds
(parsed templates are cached).

JSON paths (``extract`` rules, ``token_path``): dotted keys, ``[N]`` indexes
(negative from the end) and ``[*]`` for every element of a list (or every
value of an object): ``items[*]``, ``[*]``, ``data.user``, ``items[0].id``;
``""`` is the whole document. See :func:`find`, :func:`extract` and :func:`field`.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, TypeAlias
from urllib.parse import quote, urlencode

from mimesis import Address, Person, Text
from mimesis.locales import Locale

__all__ = [
    "GENERATOR_HELP",
    "ContentPool",
    "TemplateError",
    "default_pool",
    "extract",
    "field",
    "find",
    "format_value",
    "path_problem",
    "render",
    "render_path",
    "render_query",
    "template_problem",
]

GENERATOR_HELP = {
    "sentence": "one sentence",
    "paragraph": "2-5 sentences",
    "words": "words:N -- N words (default 3)",
    "title": "a 3-7 word title, capitalised",
    "name": "a full name",
    "first_name": "a first name",
    "last_name": "a last name",
    "email": "an address on example.com (reserved: never delivered)",
    "username": "a login-style name with digits",
    "int": "int:A:B -- an integer in [A, B] (default 0:100)",
    "float": "float:A:B -- a number in [A, B], two decimals (default 0:1)",
    "choice": "choice:a|b|c -- one of the options (strings)",
    "bool": "true or false",
    "date": "an ISO date in 2020-2026",
    "datetime": "an ISO date-time in 2020-2026, UTC (``Z``)",
    "uuid": "a random UUID (version 4)",
    "url": "an https URL on example.com",
    "phone": "a phone number",
    "city": "a city name",
    "color": "a colour name",
    "word": "one word",
    "tag": "one tag from a small set (tags repeat)",
}
"""Generator name -> what it produces (``{{name}}`` or ``{{name:args}}`` in templates)."""


class TemplateError(ValueError):
    """A template cannot be rendered: unknown generator, bad arguments, a missing
    placeholder value, or a malformed JSON path. The message says which."""


# Same syntax as ``api_spec`` validates: a generator first, so ``{{x}}`` is never a placeholder.
_TOKEN_RE = re.compile(
    r"\{\{\s*(?P<gen>[a-z_]+)(?::(?P<args>[^}]*))?\s*\}\}"
    r"|(?<!\{)\{(?P<name>[A-Za-z_]\w*)\.(?P<field>[A-Za-z_]\w*)\}(?!\})"
)


# -- content ---------------------------------------------------------------------------------


class ContentPool:
    """Pools of generated text, filled once from Mimesis; values drawn with a caller's rng.

    Args:
        seed: fills the pools (same seed, same pools).
        size: sentences in the pool (other pools are sized from it).
    """

    def __init__(self, seed: int = 0, size: int = 400) -> None:
        text = Text(Locale.EN, seed=seed)
        person = Person(Locale.EN, seed=seed)
        address = Address(Locale.EN, seed=seed)
        self.sentences = list(dict.fromkeys(text.sentence() for _ in range(size)))
        words = {w.lower() for w in text.words(quantity=size * 2) if w.isalpha()}
        self.words = sorted(words)
        self.tags = self.words[:: max(1, len(self.words) // 40)][:40]
        self.first_names = sorted({person.first_name() for _ in range(size // 2)})
        self.last_names = sorted({person.last_name() for _ in range(size // 2)})
        self.cities = sorted({address.city() for _ in range(size // 2)})
        self.phones = [person.telephone() for _ in range(size // 4)]
        self.colors = sorted({text.color() for _ in range(size // 2)})
        self._make: dict[str, Callable[[random.Random, tuple[Any, ...]], Any]] = {
            "sentence": lambda rng, a: rng.choice(self.sentences),
            "paragraph": lambda rng, a: " ".join(rng.sample(self.sentences, rng.randint(2, 5))),
            "words": lambda rng, a: " ".join(rng.choice(self.words) for _ in range(a[0])),
            "title": self._title,
            "name": lambda rng, a: f"{rng.choice(self.first_names)} {rng.choice(self.last_names)}",
            "first_name": lambda rng, a: rng.choice(self.first_names),
            "last_name": lambda rng, a: rng.choice(self.last_names),
            "email": self._email,
            "username": lambda rng, a: f"{rng.choice(self.words)}_{rng.randrange(10_000)}",
            "int": lambda rng, a: rng.randint(a[0], a[1]),
            "float": lambda rng, a: round(rng.uniform(a[0], a[1]), 2),
            "choice": lambda rng, a: rng.choice(a),
            "bool": lambda rng, a: rng.random() < 0.5,
            "date": lambda rng, a: (_DAY0 + timedelta(days=rng.randrange(_DAYS))).isoformat(),
            "datetime": self._datetime,
            "uuid": lambda rng, a: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "url": self._url,
            "phone": lambda rng, a: rng.choice(self.phones),
            "city": lambda rng, a: rng.choice(self.cities),
            "color": lambda rng, a: rng.choice(self.colors),
            "word": lambda rng, a: rng.choice(self.words),
            "tag": lambda rng, a: rng.choice(self.tags),
        }

    def generate(self, name: str, args: str | None, rng: random.Random) -> Any:
        """Return one value of generator ``name`` with its raw ``args`` (the text after ``:``).

        Raises:
            TemplateError: unknown generator or bad arguments.
        """
        make = self._make.get(name)
        if make is None:  # a plugin's generator (sim_engine.api.plugins.generator)
            plugin = _plugin_generator(name)
            if plugin is None:
                raise TemplateError(f"unknown generator {{{{{name}}}}}")
            return plugin(rng, *(args.split(":") if args else ()))
        return make(rng, _parse_args(name, args))

    def _title(self, rng: random.Random, args: tuple[Any, ...]) -> str:
        return " ".join(rng.sample(self.words, rng.randint(3, 7))).capitalize()

    def _email(self, rng: random.Random, args: tuple[Any, ...]) -> str:
        first, last = rng.choice(self.first_names), rng.choice(self.last_names)
        return f"{first}.{last}.{rng.randrange(1_000_000)}@example.com".lower().replace(" ", "")

    def _datetime(self, rng: random.Random, args: tuple[Any, ...]) -> str:
        moment = _TIME0 + timedelta(seconds=rng.randrange(_DAYS * 86400))
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _url(self, rng: random.Random, args: tuple[Any, ...]) -> str:
        return f"https://{rng.choice(self.words)}.example.com/{rng.choice(self.words)}"


_DAY0 = date(2020, 1, 1)
_TIME0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
_DAYS = (date(2027, 1, 1) - _DAY0).days

_DEFAULT_POOL: ContentPool | None = None


def default_pool() -> ContentPool:
    """Return a shared pool built with seed 0 (made on first use)."""
    global _DEFAULT_POOL
    if _DEFAULT_POOL is None:
        _DEFAULT_POOL = ContentPool(0)
    return _DEFAULT_POOL


def _plugin_generator(name: str) -> Callable[..., Any] | None:
    """Return the generator a plugin registered under ``name``, if any."""
    from sim_engine.api.plugins import registered_generators

    return registered_generators().get(name)


@lru_cache(maxsize=1024)
def _parse_args(name: str, args: str | None) -> tuple[Any, ...]:
    """Check and convert a generator's arguments (cached)."""
    if name not in GENERATOR_HELP:
        if _plugin_generator(name) is not None:
            return tuple(args.split(":")) if args else ()
        raise TemplateError(f"unknown generator {{{{{name}}}}}")
    text = args.strip() if args is not None else None
    try:
        if name == "words":
            count = int(text) if text else 3
            if not 1 <= count <= 1000:
                raise ValueError
            return (count,)
        if name in ("int", "float"):
            convert: Callable[[str], float] = int if name == "int" else float
            low, high = (0, 100) if name == "int" else (0.0, 1.0)
            if text:
                low_text, high_text = text.split(":")
                low, high = convert(low_text), convert(high_text)
            if not low <= high:
                raise ValueError
            return (low, high)
        if name == "choice":
            options = tuple(o.strip() for o in (text or "").split("|"))
            if not all(options):
                raise ValueError
            return options
    except ValueError:
        raise TemplateError(f"{{{{{name}:{args}}}}}: {GENERATOR_HELP[name]}") from None
    if text:
        raise TemplateError(f"{{{{{name}:{args}}}}}: {name} takes no arguments")
    return ()


# -- rendering -------------------------------------------------------------------------------

# A literal, or ("g", name, args) / ("p", name, field):
_Part: TypeAlias = "str | tuple[str, str, Any]"


@lru_cache(maxsize=4096)
def _parse(text: str) -> tuple[_Part, ...]:
    """Split a template string into literals and tokens (cached)."""
    parts: list[_Part] = []
    pos = 0
    for m in _TOKEN_RE.finditer(text):
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        if m.group("gen") is not None:
            name, args = m.group("gen"), m.group("args")
            _parse_args(name, args)  # fail early on bad arguments
            parts.append(("g", name, args))
        else:
            parts.append(("p", m.group("name"), m.group("field")))
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    return tuple(parts)


def _lookup(context: Mapping[str, Mapping[str, Any]], name: str, key: str) -> Any:
    obj = context.get(name)
    if obj is None:
        raise TemplateError(f"{{{name}.{key}}}: nothing named {name!r} here")
    if not isinstance(obj, Mapping) or key not in obj:
        raise TemplateError(f"{{{name}.{key}}}: {name} has no field {key!r}")
    return obj[key]


def format_value(value: Any) -> str:
    """Format a value as text: inside a longer string, a header or a query parameter.

    Strings as they are, booleans ``true``/``false``, None ``""``, lists and
    dicts as compact JSON, anything else with ``str``.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _render_str(
    text: str,
    context: Mapping[str, Mapping[str, Any]],
    rng: random.Random,
    pool: ContentPool,
    url_quote: bool = False,
    as_text: bool = False,
) -> Any:
    if "{" not in text:
        return text
    parts = _parse(text)
    values: list[str] = []
    for part in parts:
        if isinstance(part, str):
            values.append(part)
            continue
        kind, name, arg = part
        value = pool.generate(name, arg, rng) if kind == "g" else _lookup(context, name, arg)
        if len(parts) == 1 and not url_quote and not as_text:
            return value  # exactly one token: keep the value's type
        formatted = format_value(value)
        values.append(quote(formatted, safe="") if url_quote else formatted)
    return "".join(values)


def render(
    template: Any,
    context: Mapping[str, Mapping[str, Any]],
    rng: random.Random,
    pool: ContentPool | None = None,
) -> Any:
    """Fill a template's placeholders and generators (strings, lists and dicts, keys too).

    Args:
        template: a JSON-like value; non-string scalars come back unchanged.
        context: name -> fields, for ``{name.field}`` placeholders.
        rng: draws generated values (and advances).
        pool: generated content (default: :func:`default_pool`).

    Returns:
        A new value of the same shape; a string that is exactly one placeholder
        or generator becomes that value with its own type.

    Raises:
        TemplateError: an unknown generator, bad generator arguments, or a
            placeholder whose name or field is not in ``context``.
    """
    pool = pool if pool is not None else default_pool()
    if isinstance(template, str):
        return _render_str(template, context, rng, pool)
    if isinstance(template, Mapping):
        return {
            _render_str(str(k), context, rng, pool, as_text=True): render(v, context, rng, pool)
            for k, v in template.items()
        }
    if isinstance(template, (list, tuple)):
        return [render(v, context, rng, pool) for v in template]
    return template


def render_path(
    template: str,
    context: Mapping[str, Mapping[str, Any]],
    rng: random.Random,
    pool: ContentPool | None = None,
) -> str:
    """Render a URL path: every filled-in value is URL-quoted (``/`` too); literals are kept.

    ``"/users/{user.username}/posts"`` with username ``"a b/c"`` gives
    ``"/users/a%20b%2Fc/posts"``.

    Raises:
        TemplateError: as :func:`render`.
    """
    pool = pool if pool is not None else default_pool()
    return str(_render_str(template, context, rng, pool, url_quote=True))


def render_query(
    query: Mapping[str, Any],
    context: Mapping[str, Mapping[str, Any]],
    rng: random.Random,
    pool: ContentPool | None = None,
) -> str:
    """Render query parameters into an encoded query string (without ``?``).

    None values are left out, lists repeat their key, booleans are ``true``/``false``.

    Raises:
        TemplateError: as :func:`render`.
    """
    if not query:
        return ""
    rendered = render(query, context, rng, pool)
    pairs: list[tuple[str, str]] = []
    for key, value in rendered.items():
        for one in value if isinstance(value, list) else [value]:
            if one is not None:
                pairs.append((key, format_value(one)))
    return urlencode(pairs)


def template_problem(template: Any) -> str | None:
    """Return why a template's generators cannot render (unknown name, bad arguments), or None.

    For validation: placeholders are not checked here (their context is not known).
    """
    if isinstance(template, str):
        try:
            _parse(template)
        except TemplateError as exc:
            return str(exc)
        return None
    if isinstance(template, Mapping):
        items: list[Any] = [*template.keys(), *template.values()]
    elif isinstance(template, (list, tuple)):
        items = list(template)
    else:
        return None
    for item in items:
        problem = template_problem(item)
        if problem is not None:
            return problem
    return None


# -- JSON paths ------------------------------------------------------------------------------

_STEP_RE = re.compile(r"\[\s*(\*|-?\d+)\s*\]|([^.\[\]]+)")
_Step: TypeAlias = "tuple[str, Any]"  # ("key", str) | ("index", int) | ("all", None)


@lru_cache(maxsize=1024)
def _steps(path: str) -> tuple[_Step, ...]:
    steps: list[_Step] = []
    pos = 0
    while pos < len(path):
        if path[pos] == ".":
            pos += 1
            if not steps or pos == len(path) or path[pos] in ".[]":
                raise TemplateError(f"path {path!r}: a '.' must join two steps (at {pos - 1})")
            continue
        m = _STEP_RE.match(path, pos)
        if m is None:
            raise TemplateError(f"path {path!r}: unexpected {path[pos]!r} at {pos}")
        if m.group(1) is None:
            steps.append(("key", m.group(2)))
        elif m.group(1) == "*":
            steps.append(("all", None))
        else:
            steps.append(("index", int(m.group(1))))
        pos = m.end()
    return tuple(steps)


def path_problem(path: str) -> str | None:
    """Return why ``path`` is not a valid JSON path, or None."""
    try:
        _steps(path)
    except TemplateError as exc:
        return str(exc)
    return None


def find(document: Any, path: str) -> list[Any] | None:
    """Return the values at ``path`` in ``document``, or None when the path is missing.

    A step that matches nothing in a non-empty set of values makes the path
    missing; ``[*]`` over an empty list gives ``[]`` (present, but empty).
    Elements of a ``[*]`` that lack a later key are left out as long as some have it.

    Raises:
        TemplateError: the path is malformed.
    """
    current = [document]
    for kind, arg in _steps(path):
        found: list[Any] = []
        matched = False
        for value in current:
            if kind == "key":
                if isinstance(value, Mapping) and arg in value:
                    found.append(value[arg])
                    matched = True
            elif kind == "index":
                if isinstance(value, list) and -len(value) <= arg < len(value):
                    found.append(value[arg])
                    matched = True
            elif isinstance(value, list):
                found.extend(value)
                matched = True
            elif isinstance(value, Mapping):
                found.extend(value.values())
                matched = True
        if current and not matched:
            return None
        current = found
    return current


def extract(document: Any, path: str) -> list[Any]:
    """Return the values at ``path`` (``[]`` when missing: the caller decides if that fails).

    A path without ``[*]`` gives at most one value; ``""`` gives ``[document]``.

    Raises:
        TemplateError: the path is malformed.
    """
    found = find(document, path)
    return found if found is not None else []


_MISSING: Any = object()


def field(item: Any, dotted: str, default: Any = _MISSING) -> Any:
    """Return the value at a JSON path inside ``item`` (``""``: the item itself).

    A path with ``[*]`` returns the list of its values.

    Raises:
        KeyError: the path is missing and no ``default`` was given (the key is ``dotted``).
        TemplateError: the path is malformed.
    """
    found = find(item, dotted)
    if found is None:
        if default is _MISSING:
            raise KeyError(dotted)
        return default
    if any(kind == "all" for kind, _ in _steps(dotted)):
        return found
    return found[0]
