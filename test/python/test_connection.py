"""An accepted connection by its fd alone (connection.FdSock) and the loop's poller
(server.Poller), over real socket pairs and files."""

import os
import socket
import tempfile
import threading
import unittest

import helpers  # noqa: F401 (the package on sys.path)

from emperor_worker.connection import FD_SOCKETS, FdSock
from emperor_worker.server import Poller


def pair():
    a, b = socket.socketpair()
    return FdSock(a.detach()), b


@unittest.skipUnless(FD_SOCKETS, "this kernel does not read a socket without waiting by preadv2 RWF_NOWAIT")
class FdSocks(unittest.TestCase):
    def test_reads_without_waiting_and_blocking(self):
        s, peer = pair()
        self.addCleanup(s.close)
        self.addCleanup(peer.close)
        with self.assertRaises(BlockingIOError):
            s.recv(100, socket.MSG_DONTWAIT)
        peer.sendall(b"hello")
        self.assertEqual(s.recv(100, socket.MSG_DONTWAIT), b"hello")
        peer.sendall(b"again")
        self.assertEqual(s.recv(100), b"again")
        peer.shutdown(socket.SHUT_WR)
        self.assertEqual(s.recv(100), b"", "EOF")

    def test_sendall_more_than_the_socket_buffer_holds(self):
        s, peer = pair()
        self.addCleanup(s.close)
        self.addCleanup(peer.close)
        data = os.urandom(4 << 20)
        got = bytearray()
        reader = threading.Thread(target=lambda: [got.extend(c) for c in iter(lambda: peer.recv(1 << 16), b"")])
        reader.start()
        s.sendall(data)
        s.close()
        reader.join(10)
        self.assertEqual(bytes(got), data)

    def test_send_without_waiting_on_a_full_socket(self):
        s, peer = pair()
        self.addCleanup(s.close)
        self.addCleanup(peer.close)
        with self.assertRaises(BlockingIOError):
            while True:
                s.send(b"x" * 65536, socket.MSG_DONTWAIT)

    def test_sendfile_from_an_offset_leaves_the_position_after_it(self):
        s, peer = pair()
        self.addCleanup(s.close)
        self.addCleanup(peer.close)
        with tempfile.TemporaryFile() as f:
            f.write(b"0123456789")
            f.flush()
            self.assertEqual(s.sendfile(f, 2, 5), 5)
            self.assertEqual(f.tell(), 7)
            self.assertEqual(s.sendfile(f, 8, 10), 2, "the file ends first")
            s.close()
            self.assertEqual(peer.recv(100) + peer.recv(100), b"2345689")

    def test_a_second_close_does_nothing(self):
        s, peer = pair()
        self.addCleanup(peer.close)
        fd = s.fileno()
        s.close()
        other = os.open(os.devnull, os.O_RDONLY)  # likely the same number: it must stay open
        self.addCleanup(os.close, other)
        s.close()
        os.fstat(other)
        self.assertEqual(s.fileno(), -1)
        self.assertGreaterEqual(fd, 0)


class Pollers(unittest.TestCase):
    def test_readable_fds_with_their_data(self):
        p = Poller()
        self.addCleanup(p.close)
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        p.register(a.fileno(), ("conn", "x"))
        self.assertEqual(p.wait(0), [])
        b.sendall(b"!")
        events = p.wait(1)
        self.assertEqual([fd for fd, _ in events], [a.fileno()])
        self.assertEqual(p.data[a.fileno()], ("conn", "x"))
        with self.assertRaises(KeyError):
            p.register(a.fileno(), ("conn", "y"))
        p.unregister(a.fileno())
        self.assertEqual(p.wait(0), [])
        with self.assertRaises(KeyError):
            p.unregister(a.fileno())

    def test_an_fd_closed_before_it_is_unregistered(self):
        p = Poller()
        self.addCleanup(p.close)
        a, b = socket.socketpair()
        self.addCleanup(b.close)
        p.register(a.fileno(), ("conn", None))
        fd = a.fileno()
        a.close()
        p.unregister(fd)  # the kernel dropped it already: no error
        self.assertNotIn(fd, p.data)


if __name__ == "__main__":
    unittest.main()
