"""One client connection: its socket, the protocol it speaks, and the bytes read from it
but not consumed yet."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .protocols import Protocol

# Bytes asked of the kernel per read.
RECV_SIZE = 64 * 1024


class ClientError(OSError):
    """The client broke the request: went away, timed out, or sent a malformed body."""


class Conn:
    """A connection accepted on a listener of ``protocol``; ``peer`` is accept()'s address.

    The socket is blocking with the kernel's timeouts (``SO_RCVTIMEO``/``SO_SNDTIMEO``,
    socket-timeout) inherited from the listener.
    """

    __slots__ = ("sock", "fd", "protocol", "buf", "peer", "last_active", "registered", "head_since", "busy")

    def __init__(self, sock: socket.socket, peer: Any, protocol: "Protocol") -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.protocol = protocol
        self.buf = bytearray()
        self.peer = peer
        self.last_active = time.monotonic()
        # In the loop's selector (a request thread may have it instead).
        self.registered = False
        # When the first byte of a request head not complete yet came (monotonic); 0 when none.
        self.head_since = 0.0
        # With threads: a request thread has it (not in the selector, not the loop's to close).
        self.busy = False

    def peer_text(self) -> str:
        """The client as log lines show it: ``addr:port``, ``[v6]:port`` or ``unix:PATH``."""
        p = self.peer
        if isinstance(p, tuple) and len(p) >= 2:
            return "%s:%s" % (p[0], p[1]) if ":" not in str(p[0]) else "[%s]:%s" % (p[0], p[1])
        return "unix:%s" % (self.protocol.server[2] or "socket")

    def recv_more(self) -> bool:
        """Appends what is available to ``buf`` (blocking up to the socket timeout); False at EOF.

        :raises ClientError: the read timed out or failed
        """
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, socket.timeout):
            raise ClientError("timed out reading from the client")
        except OSError as err:
            raise ClientError(str(err))
        if not data:
            return False
        self.buf += data
        return True
