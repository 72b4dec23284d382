"""OpenAPI import: turn an OpenAPI 3.0 / 3.1 document into a starter scenario.

``sim-engine init --from-openapi FILE_OR_URL -o scenario.yaml`` calls
:func:`import_openapi` and :func:`write_scenario`. The result is a scenario with
an ``api`` section (see :mod:`sim_engine.model.api_spec`) that validates as written
and runs: one action per operation, request bodies built from the schemas with
realistic generator values, producer -> consumer links between operations, auth
from the security schemes, and two starter personas. The rules are documented
in ``docs/openapi-import.md``; in short:

* **Resources.** A path parameter names an item of the resource whose literal
  segment precedes it (``/posts/{post_id}`` -> ``posts``). Each resource with
  ids has two memory keys: ``seen_R`` (items this user saw in a list answer)
  and ``own_R`` (items this user created).
* **Producers.** ``GET`` on a collection (``/posts``) whose answer is an array
  of objects with an id (``[*]``, or ``items[*]``/``data[*]``... in a page
  object) extracts the ids into ``memory.seen_R``. ``POST`` on a collection
  whose 2xx answer has an id extracts it into ``memory.own_R``. A resource no
  list operation returns is learnt from reference fields of other answers
  (``post_id``, ``postId``; ``author_id``/``owner_id``... for users).
* **Consumers.** ``GET /R/{id}`` picks from ``seen_R`` (else ``own_R``);
  ``PUT``/``PATCH``/``DELETE /R/{id}`` pick from ``own_R`` (else ``seen_R``),
  ``DELETE`` forgets the item; a parent parameter (``/R/{id}/children``) picks
  from ``seen_R`` (else ``own_R``). Items of the sign-up resource the user owns
  are the user itself (``{user.id}``). An action whose memory nothing fills is
  kept with weight 0 and a comment.
* **Auth.** ``http bearer`` / ``oauth2`` / ``openIdConnect`` -> a log-in
  operation found by heuristics (path or operationId with
  login/token/auth/session, a token-like field in its answer) and its
  ``token_path``; ``http basic`` -> ``basic``; ``apiKey`` (header) ->
  ``api_key`` with a placeholder key; a ``POST`` with a password property on
  ``/users``, ``/register``, ``/signup``... -> ``auth.signup``.

Public API: :func:`load_openapi`, :func:`scenario_from_openapi`,
:func:`build_scenario`, :func:`import_openapi`, :func:`render_scenario`,
:func:`write_scenario`, :class:`ImportResult`, :class:`OpenApiError`.

Modules (internal; import from the package): ``loading`` (read, fetch, ``$ref``),
``schemas`` (schema flattening, operations), ``values`` (template values),
``state`` (:class:`ImportResult`, the builder's shared state), ``auth`` and
``actions`` (the builder's steps), ``builder`` (the entry points), ``render``
(commented YAML).
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
