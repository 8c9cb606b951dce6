"""What the worker sets on the listening sockets it inherits (``Server.listen``)."""

import os
import socket
import unittest

from helpers import fixed_date  # noqa: F401 - puts the package on sys.path
from emperor_worker.log import Log
from emperor_worker.server import Server


class _Worker:
    spec = None


class DeferAccept(unittest.TestCase):
    """uWSGI sets ``TCP_DEFER_ACCEPT`` on its TCP sockets unless ``no-defer-accept``
    (core/socket.c); the worker sets it on uwsgi-protocol TCP listeners."""

    def listen(self, protocol: str, defer: bool = True) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.addCleanup(sock.close)
        server = Server(_Worker(), Log({}), 4096, 4.0, 1, None, fixed_date)  # type: ignore[arg-type]
        server.defer_accept = defer
        # The server wraps (and will close) the fd it is given: a duplicate of the same socket.
        server.listen([{"fd": os.dup(sock.fileno()), "name": "t", "protocol": protocol}], 16)
        for listener in server.listeners:
            self.addCleanup(listener.close)
        return sock

    def deferred(self, sock: socket.socket) -> int:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT)

    def test_uwsgi_tcp_listeners_defer_accept(self):
        self.assertGreater(self.deferred(self.listen("uwsgi")), 0)

    def test_no_defer_accept_leaves_it_off(self):
        self.assertEqual(self.deferred(self.listen("uwsgi", defer=False)), 0)

    def test_http_listeners_are_left_alone(self):
        self.assertEqual(self.deferred(self.listen("http")), 0)


if __name__ == "__main__":
    unittest.main()
