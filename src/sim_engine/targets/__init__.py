"""Targets: what simulated users act on (adapters at the edge; the core never imports them).

* :class:`~sim_engine.targets.social.SocialApiTarget` -- the demo social API's
  operations (feed, read, create, update, delete, sign-up, log-in) over a
  :class:`~sim_engine.targets.transport.Transport`:
  :class:`~sim_engine.targets.http.AiohttpTransport` (real HTTP, keep-alive
  pool) or :class:`~sim_engine.targets.inprocess.AsgiTransport` (the same app
  called in-process, no sockets).
* :class:`~sim_engine.targets.mock.MockTarget` -- a handler function, for tests.
"""

from sim_engine.targets.mock import MockTarget
from sim_engine.targets.social import SocialApiTarget
from sim_engine.targets.transport import Response, TargetUnreachableError, Transport

__all__ = ["MockTarget", "Response", "SocialApiTarget", "TargetUnreachableError", "Transport"]
