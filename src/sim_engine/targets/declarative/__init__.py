"""The declarative target: any HTTP API described by a scenario's ``api`` section.

:class:`DeclarativeTarget` turns the engine's :class:`~sim_engine.model.records.ActionRequest`
into the section's requests (``sign_up`` / ``log_in`` from ``api.auth``, any
other name from ``api.actions``) and keeps, for each simulated user, what the
API told it:

* identity (from the engine's sign-up / log-in payload), id on the target, token;
* memory: ``memory.KEY`` -> the newest items (dicts of fields) extracted from
  answers, bounded by ``api.memory[KEY]``; shared ``pool.KEY`` lists likewise
  (``api.pools``).

Actions pick items from memory or pools (``pick``, ``pick_strategy``), fill
their templates (:mod:`sim_engine.model.templates`), send, and on success keep what
their ``extract`` rules take from the answer and ``forget`` the item they
removed. The engine asks :meth:`DeclarativeTarget.resolve` whether an action is
possible for a user (else its fallback) and :meth:`DeclarativeTarget.has` for
workflow ``requires`` and session affinity; workflows and affinity themselves
are the engine's.

Nothing here raises for a failed call: a refused connection, a status the
action does not expect, an answer that is not JSON or lacks a field the action
extracts, a template that cannot be filled -- each is an :class:`Outcome` with
``ok=False`` and a one-line ``error`` (with a body excerpt for bad answers).

Picks: ``random`` draws uniformly; ``latest`` takes the newest item;
``popular`` draws with weight 1 + the times each item was picked so far (by
any action, from that list): preferential attachment, so the most picked items
are the likeliest and popularity grows heavy-tailed, as on real feeds, without
locking onto the first item ever picked. An action's ``weight`` draws by the
product of ``1 + term`` instead (``popularity``: the picks of the item by every
user so far, per kind of item; or a number the API gave with the item), and its
``prefer`` gives a share of picks to the items passing a condition (posts by
authors the user follows): trends, reputation and an interaction web for any
API (``_picking``). One generator, seeded from ``seed``,
draws picks, generated content and deliberate errors: a run is deterministic
for a seed and an order of events.

Deliberate errors (``api.errors``): with probability ``share`` an action is
replaced by one of the ``kinds`` that applies to it -- ``wrong_password`` (a
log-in with a wrong password; with HTTP Basic and no log-in, the action with a
wrong password), ``invalid_payload`` (the action's body, every field of the
wrong type), ``unknown_id`` (the picked items' ids replaced by numbers from
2,000,000,000 up, which no API has handed out). A 4xx answer is the rejection
wanted: ``intended=True``, ``error="intended: KIND"``. A 2xx or 3xx answer means
the API took it: ``ok=False``, ``intended=False``, ``error="intended error was
accepted: KIND"`` (a real finding); a 5xx or no answer is a real failure too.
``delete_account`` (the engine's clean-up of churned users) is never replaced.

Forgetting (``forget``): on success the picked item leaves the list it came
from, and its ``id`` is remembered as deleted (the last 10,000 ids) for every
list holding the *same kind of item*, in every user's memory and in the pools.
Lists are of one kind when actions put their items' ``id`` in the same place of
a path: ``/posts/{post.id}`` (update, picked from ``memory.own_posts``) and
``/posts/{post.id}/comments`` (comment, picked from ``pool.recent_posts``) make
both lists hold posts; a comments list used as ``/comments/{c.id}`` is another
kind, so deleting post 5 leaves comment 5 alone. A deleted id is dropped from
those lists lazily (when they are next read) and is not taken back from a later
``GET`` answer (a list read just before the delete); an answer to any other
method (a create) brings it back, for APIs that reuse ids. Independently, a
404 or 410 answer drops the items an action picked from where it picked them.

Saving (a resumed run): :meth:`DeclarativeTarget.export_memory` returns one
user's identity (not the password), id on the target, token (with its age) and
every memory list as a JSON-ready dict, which the engine saves with the user in
``state.db``; :meth:`DeclarativeTarget.restore_memory` takes it back, so a
resumed user keeps its memory and, with a token that has not expired, sends no
log-in before its next action.

Modules: ``target`` (:class:`DeclarativeTarget`: the Target protocol, what the
engine asks, actions), ``_auth`` (sign-up, log-in, renewal), ``_errors``
(deliberate errors), ``_memory`` (users, lists, pools, forgetting, saving),
``_base`` (state and request building), ``_plan`` (what each action says, worked out
once: endpoint, guards, compiled ``extract`` rules), ``_answers`` (pure helpers),
``_picking`` (weights, popularity), ``_kinds`` (item keys, kinds of items).
"""

from sim_engine.targets.declarative.target import DeclarativeTarget

__all__ = ["DeclarativeTarget"]
