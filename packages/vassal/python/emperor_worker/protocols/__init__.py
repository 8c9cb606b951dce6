"""The wire protocols a worker serves, by the name the master gives each socket.

Each is a sans-IO ``Protocol`` (``base.py``): bytes in, requests out, response heads
back; no sockets, clocks or app calls inside. ``server.py`` drives them.
"""

from __future__ import annotations

from typing import Callable

from typing import Optional

from .base import Protocol, ProtocolError
from .fastcgi import FastcgiProtocol
from .http import HttpProtocol
from .uwsgi import UwsgiProtocol

__all__ = ["PROTOCOLS", "Protocol", "ProtocolError", "make_protocol"]

#: The protocols by the spec's socket ``protocol`` (packages/vassal/src/shared/worker-spec.ts).
PROTOCOLS = {"http": HttpProtocol, "uwsgi": UwsgiProtocol, "fastcgi": FastcgiProtocol}


def make_protocol(name: str, buffer_size: int, server: tuple, date: Callable[[], str], spec: Optional[dict] = None) -> Protocol:
    """The protocol for one listening socket (see ``Protocol`` for the arguments), set up
    from the worker ``spec`` when given (``Protocol.configure``).

    :raises ValueError: a protocol this worker does not speak
    """
    cls = PROTOCOLS.get(name)
    if cls is None:
        raise ValueError("socket protocol %r is not one this worker speaks (%s)" % (name, ", ".join(sorted(PROTOCOLS))))
    protocol = cls(buffer_size, server, date)
    if spec:
        protocol.configure(spec)
    return protocol
