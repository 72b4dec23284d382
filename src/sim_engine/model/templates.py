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

Plugin generators (``@plugins.generator``) render only when the caller passes
the plugin registry (``registry=``, to :class:`ContentPool` or to the render
functions): this module never looks plugins up by itself.

JSON paths (``extract`` rules, ``token_path``) live in :mod:`sim_engine.model.jsonpath`
(:func:`find`, :func:`extract`, :func:`field`, :func:`path_problem`), re-exported here.
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
from urllib.parse import quote, unquote, urlencode

from mimesis import Address, Person, Text
from mimesis.locales import Locale

from sim_engine.model.jsonpath import TemplateError, extract, field, find, path_problem
from sim_engine.model.plugin_spec import PluginCatalog

__all__ = [
    "GENERATOR_HELP",
    "ContentPool",
    "TemplateError",
    "default_pool",
    "extract",
    "field",
    "find",
    "format_value",
    "match_path",
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
        registry: plugin generators this pool may call (None: built-in generators only).
    """

    def __init__(
        self, seed: int = 0, size: int = 400, *, registry: PluginCatalog | None = None
    ) -> None:
        self.registry = registry
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

    def generate(
        self,
        name: str,
        args: str | None,
        rng: random.Random,
        registry: PluginCatalog | None = None,
    ) -> Any:
        """Return one value of generator ``name`` with its raw ``args`` (the text after ``:``).

        A name that is not built in is looked up in ``registry`` (default: the
        pool's own); a plugin generator gets ``(rng, *args.split(":"))``.

        Raises:
            TemplateError: unknown generator or bad arguments.
        """
        make = self._make.get(name)
        if make is None:  # a plugin's generator (@plugins.generator)
            catalog = registry if registry is not None else self.registry
            plugin = catalog.generator(name) if catalog is not None else None
            if plugin is None:
                raise TemplateError(f"unknown generator {{{{{name}}}}}")
            return plugin(rng, *_plugin_args(args))
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


def _plugin_args(args: str | None) -> tuple[str, ...]:
    """A plugin generator's arguments: the strings between ``:`` (none without args)."""
    return tuple(args.split(":")) if args else ()


@lru_cache(maxsize=1024)
def _parse_args(name: str, args: str | None) -> tuple[Any, ...]:
    """Check and convert a built-in generator's arguments (cached).

    Another name (a plugin's generator, or an unknown one) gets its raw strings:
    whether it exists depends on the registry, checked when it is generated.
    """
    if name not in GENERATOR_HELP:
        return _plugin_args(args)
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


def _known(generator: str, registry: PluginCatalog | None) -> bool:
    """Whether ``generator`` is built in or one of ``registry``'s."""
    if generator in GENERATOR_HELP:
        return True
    return registry is not None and registry.generator(generator) is not None


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
    registry: PluginCatalog | None = None,
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
        value = (
            pool.generate(name, arg, rng, registry) if kind == "g" else _lookup(context, name, arg)
        )
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
    *,
    registry: PluginCatalog | None = None,
) -> Any:
    """Fill a template's placeholders and generators (strings, lists and dicts, keys too).

    Args:
        template: a JSON-like value; non-string scalars come back unchanged.
        context: name -> fields, for ``{name.field}`` placeholders.
        rng: draws generated values (and advances).
        pool: generated content (default: :func:`default_pool`).
        registry: plugin generators (default: the pool's; None there too: built-ins only).

    Returns:
        A new value of the same shape; a string that is exactly one placeholder
        or generator becomes that value with its own type.

    Raises:
        TemplateError: an unknown generator, bad generator arguments, or a
            placeholder whose name or field is not in ``context``.
    """
    pool = pool if pool is not None else default_pool()
    if isinstance(template, str):
        return _render_str(template, context, rng, pool, registry=registry)
    if isinstance(template, Mapping):
        return {
            _render_str(str(k), context, rng, pool, as_text=True, registry=registry): render(
                v, context, rng, pool, registry=registry
            )
            for k, v in template.items()
        }
    if isinstance(template, (list, tuple)):
        return [render(v, context, rng, pool, registry=registry) for v in template]
    return template


def render_path(
    template: str,
    context: Mapping[str, Mapping[str, Any]],
    rng: random.Random,
    pool: ContentPool | None = None,
    *,
    registry: PluginCatalog | None = None,
) -> str:
    """Render a URL path: every filled-in value is URL-quoted (``/`` too); literals are kept.

    ``"/users/{user.username}/posts"`` with username ``"a b/c"`` gives
    ``"/users/a%20b%2Fc/posts"``.

    Raises:
        TemplateError: as :func:`render`.
    """
    pool = pool if pool is not None else default_pool()
    return str(_render_str(template, context, rng, pool, url_quote=True, registry=registry))


def match_path(template: str, path: str) -> dict[str, dict[str, str]] | None:
    """The reverse of :func:`render_path`: whether ``path`` is ``template`` filled in.

    The query strings of both are ignored; a generator (``{{uuid}}``) matches any text
    within one segment. ``match_path("/posts/{post.id}/likes", "/posts/7/likes")`` gives
    ``{"post": {"id": "7"}}``.

    Returns:
        each placeholder's value, URL-unquoted (strings), by name and field; None when
        ``path`` is not of that shape.
    """
    pattern, names = _path_pattern(template.split("?", 1)[0])
    found = pattern.fullmatch(path.split("?", 1)[0])
    if found is None:
        return None
    values: dict[str, dict[str, str]] = {}
    for (name, key), value in zip(names, found.groups(), strict=True):
        values.setdefault(name, {})[key] = unquote(value)
    return values


@lru_cache(maxsize=512)
def _path_pattern(template: str) -> tuple[re.Pattern[str], tuple[tuple[str, str], ...]]:
    """A path template as a regular expression: one group per placeholder (cached)."""
    regex: list[str] = []
    names: list[tuple[str, str]] = []
    for part in _parse(template):
        if isinstance(part, str):
            regex.append(re.escape(part))
        elif part[0] == "g":
            regex.append("[^/]*")
        else:
            regex.append("([^/]+)")
            names.append((part[1], str(part[2])))
    return re.compile("".join(regex)), tuple(names)


def render_query(
    query: Mapping[str, Any],
    context: Mapping[str, Mapping[str, Any]],
    rng: random.Random,
    pool: ContentPool | None = None,
    *,
    registry: PluginCatalog | None = None,
) -> str:
    """Render query parameters into an encoded query string (without ``?``).

    None values are left out, lists repeat their key, booleans are ``true``/``false``.

    Raises:
        TemplateError: as :func:`render`.
    """
    if not query:
        return ""
    rendered = render(query, context, rng, pool, registry=registry)
    pairs: list[tuple[str, str]] = []
    for key, value in rendered.items():
        for one in value if isinstance(value, list) else [value]:
            if one is not None:
                pairs.append((key, format_value(one)))
    return urlencode(pairs)


def is_literal(template: Any) -> bool:
    """True when ``template`` (a JSON-like value, keys too) has no placeholder and no
    generator: it renders to itself, whatever the context and generator."""
    if isinstance(template, str):
        return all(isinstance(part, str) for part in _parse(template))
    if isinstance(template, Mapping):
        return all(is_literal(str(k)) and is_literal(v) for k, v in template.items())
    if isinstance(template, (list, tuple)):
        return all(is_literal(v) for v in template)
    return True


def template_problem(template: Any, *, registry: PluginCatalog | None = None) -> str | None:
    """Return why a template's generators cannot render (unknown name, bad arguments), or None.

    For validation: placeholders are not checked here (their context is not known).
    A generator that is not built in must be in ``registry`` (None: built-ins only).
    """
    if isinstance(template, str):
        try:
            parts = _parse(template)
        except TemplateError as exc:
            return str(exc)
        for part in parts:
            if isinstance(part, tuple) and part[0] == "g" and not _known(part[1], registry):
                return f"unknown generator {{{{{part[1]}}}}}"
        return None
    if isinstance(template, Mapping):
        items: list[Any] = [*template.keys(), *template.values()]
    elif isinstance(template, (list, tuple)):
        items = list(template)
    else:
        return None
    for item in items:
        problem = template_problem(item, registry=registry)
        if problem is not None:
            return problem
    return None
