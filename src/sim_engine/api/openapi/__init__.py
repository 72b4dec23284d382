"""OpenAPI import: turn an OpenAPI 3.0 / 3.1 or Swagger 2.0 document into a starter scenario.

``sim-engine init --from-openapi FILE_OR_URL -o scenario.yaml`` calls
:func:`import_openapi` and :func:`write_scenario`. The result is a scenario with
an ``api`` section (see :mod:`sim_engine.model.api_spec`) that validates as written
and runs: one action per operation, request bodies built from the schemas with
realistic generator values, producer -> consumer links between operations, auth
from the security schemes and operations, and two starter personas. Swagger 2.0 is
converted first by swagger2openapi (:mod:`.swagger`). The rules are documented in
``docs/openapi-import.md``; in short:

* **Resources.** A path parameter names an item of the resource whose literal
  segment precedes it (``/posts/{post_id}`` -> ``posts``). Each resource with
  items has two memory keys: ``seen_R`` (items this user saw in a list answer)
  and ``own_R`` (items this user created), stored with the **key fields** the
  paths address them by (``slug`` for ``/articles/{slug}``, the id as ``id``).
* **Producers.** ``GET`` on a collection whose answer is an array of objects with an
  id or key field fills ``seen_R``; ``POST`` on a collection whose answer has one
  fills ``own_R``; a resource nothing lists is learnt from references in other
  answers (``post_id``; ``author: {username}`` for ``/profiles/{username}``).
* **Consumers.** A path parameter is filled from the picked item's field of the same
  name and kind (never a slug from an id); the parents of the addressed item come
  from that item's parent keys (``/posts/{comment.post_id}/comments/{comment.id}``).
  ``GET`` picks from ``seen_R``, ``PUT``/``PATCH`` from ``own_R`` (else ``seen_R``),
  ``DELETE`` from ``own_R`` only and forgets the item: the deleting action cleanup
  uses. An action nothing can fill is kept with weight 0 and a comment.
* **Auth.** ``http bearer`` / ``oauth2`` / ``openIdConnect``, or an ``apiKey`` in
  ``Authorization`` with a log-in returning a token -> token auth with the prefix the
  document shows (or ``--auth-prefix``); ``http basic`` -> ``basic``; other
  ``apiKey`` s -> ``api_key`` with a placeholder key; sign-up and log-in bodies are
  found under wrapper objects.
* **Left out** unless asked for (:class:`ImportOptions`): destructive operations
  (``DELETE`` of a collection, flush/reset, admin and permission endpoints) and
  operational ones (health, heartbeat, version, metadata, ``__api__``...).

Public API: :func:`load_openapi`, :func:`scenario_from_openapi`,
:func:`build_scenario`, :func:`import_openapi`, :func:`render_scenario`,
:func:`write_scenario`, :class:`ImportOptions`, :class:`ImportResult`,
:class:`OpenApiError`.

Modules (internal; import from the package): ``errors``, ``loading`` (read, fetch,
``$ref``), ``swagger`` (Swagger 2.0 conversion), ``schemas`` (schema flattening,
operations), ``values`` (template values), ``state`` (:class:`ImportResult`, the
builder's shared state), ``auth``, ``links`` (producers and key fields), ``paths``
(paths, picks, extraction, names) and ``actions`` (the builder's steps), ``builder``
(the entry points), ``render`` (commented YAML).
"""

from sim_engine.api.openapi.builder import build_scenario, import_openapi, scenario_from_openapi
from sim_engine.api.openapi.errors import OpenApiError, OpenApiFetchError
from sim_engine.api.openapi.loading import (
    FETCH_TIMEOUT_S,
    MAX_DOCUMENT_BYTES,
    check_document,
    load_openapi,
    resolve_refs,
)
from sim_engine.api.openapi.render import render_scenario, write_scenario
from sim_engine.api.openapi.state import ImportOptions, ImportResult

__all__ = [
    "FETCH_TIMEOUT_S",
    "MAX_DOCUMENT_BYTES",
    "ImportOptions",
    "ImportResult",
    "OpenApiError",
    "OpenApiFetchError",
    "build_scenario",
    "check_document",
    "import_openapi",
    "load_openapi",
    "render_scenario",
    "resolve_refs",
    "scenario_from_openapi",
    "write_scenario",
]
