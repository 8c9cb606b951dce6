"""One client connection: its socket, the protocol it speaks, and the bytes read from it
but not consumed yet."""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .protocols import Protocol

# Bytes asked of the kernel per read.
RECV_SIZE = 64 * 1024


class ClientError(OSError):
    """The client broke the request: went away, timed out, or sent a malformed body."""


def _nowait_reads() -> bool:
    """Whether this kernel and Python read a socket without waiting by ``preadv2(...,
    RWF_NOWAIT)`` (Linux 4.14+: the flag reaches the socket as MSG_DONTWAIT): an empty
    socket pair must answer EAGAIN at once."""
    if not hasattr(os, "preadv") or not hasattr(os, "RWF_NOWAIT"):
        return False
    a, b = socket.socketpair()
    try:
        os.preadv(a.fileno(), [bytearray(1)], -1, os.RWF_NOWAIT)
    except BlockingIOError:
        return True
    except (OSError, ValueError):
        return False
    finally:
        a.close()
        b.close()
    return False


#: Accepted connections are ``FdSock``s (else ``socket.socket`` objects): see FdSock.
FD_SOCKETS = _nowait_reads()


class FdSock:
    """An accepted stream socket by its fd alone, with the few socket methods a connection
    uses (blocking, bounded by the kernel timeouts SO_RCVTIMEO/SO_SNDTIMEO it inherited
    from the listener: a read or write that times out raises BlockingIOError, as
    ``socket.socket`` does there). Made per connection in place of ``socket.socket``,
    whose constructor validates the fd with getsockname(2): a syscall per connection.
    Reads without waiting take ``preadv2`` with ``RWF_NOWAIT`` (see FD_SOCKETS).
    """

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def recv(self, size: int, flags: int = 0) -> bytes:
        """Up to ``size`` bytes (b"" at EOF); ``flags`` may only be MSG_DONTWAIT.

        :raises BlockingIOError: nothing came within the timeout (or at once, MSG_DONTWAIT)
        :raises OSError: the read failed (ECONNRESET...)
        """
        if flags:
            buf = bytearray(size)
            n = os.preadv(self.fd, [buf], -1, os.RWF_NOWAIT)
            del buf[n:]
            return bytes(buf)
        return os.read(self.fd, size)

    def send(self, data: bytes, flags: int = 0) -> int:
        """Bytes written of ``data``; ``flags`` may only be MSG_DONTWAIT.

        :raises BlockingIOError: no room within the timeout (or at once, MSG_DONTWAIT)
        :raises OSError: the write failed (EPIPE, ECONNRESET...)
        """
        if flags:
            return os.pwritev(self.fd, [data], -1, os.RWF_NOWAIT)
        return os.write(self.fd, data)

    def sendall(self, data: bytes) -> None:
        """All of ``data``, in as many writes as it takes.

        :raises BlockingIOError: a write made no progress within the timeout
        :raises OSError: a write failed
        """
        fd = self.fd
        n = os.write(fd, data)
        if n < len(data):
            view = memoryview(data)
            while n < len(view):
                n += os.write(fd, view[n:])

    def sendfile(self, file: Any, offset: int, count: int) -> int:
        """``count`` bytes of the regular ``file`` from ``offset`` with sendfile(2); the
        bytes sent (fewer when the file ends first). The file's position ends after them,
        as ``socket.sendfile`` leaves it.

        :raises BlockingIOError: a write made no progress within the timeout
        :raises OSError: sendfile failed
        """
        infd = file.fileno()
        sent = 0
        try:
            while sent < count:
                n = os.sendfile(self.fd, infd, offset + sent, count - sent)
                if not n:
                    break
                sent += n
        finally:
            if sent:
                file.seek(offset + sent)
        return sent

    def close(self) -> None:
        """Closes the fd once (a second close does nothing)."""
        fd = self.fd
        if fd >= 0:
            self.fd = -1
            os.close(fd)


class Conn:
    """A connection accepted on a listener of ``protocol``; ``peer`` is accept()'s address.

    The socket (an ``FdSock``, or a ``socket.socket``) is blocking with the kernel's
    timeouts (``SO_RCVTIMEO``/``SO_SNDTIMEO``, socket-timeout) inherited from the listener.
    """

    __slots__ = ("sock", "fd", "protocol", "buf", "peer", "last_active", "registered", "head_since", "busy")

    def __init__(self, sock: Any, peer: Any, protocol: "Protocol") -> None:
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
