"""The WSGI layer (wsgi.py) over a fake connection: wsgi.input reading bodies that arrive in
pieces, 100-continue, draining; the app's response as the bytes a client gets."""

import tempfile
import unittest

from helpers import DATE, PEER, http, pieces, uwsgi

from emperor_worker.connection import ClientError
from emperor_worker.protocols.base import LengthReader
from emperor_worker.protocols.http import CONTINUE, ChunkedReader
from emperor_worker.wsgi import ERROR_500, ERROR_500_HEAD, MAX_DRAIN_BYTES, FileWrapper, Input, Response, run_app

DATE_LINE = b"Date: " + DATE.encode() + b"\r\n"


class FakeSock:
    def __init__(self, fail_after: int = -1) -> None:
        self.sent = bytearray()
        self.fail_after = fail_after  # sendall calls that work before one raises

    def sendall(self, data: bytes) -> None:
        if self.fail_after == 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.fail_after -= 1
        self.sent += data

    def sendfile(self, file, offset: int, count: int) -> int:
        file.seek(offset)
        data = file.read(count)
        self.sent += data
        return len(data)


class FakeConn:
    """A connection whose reads return ``chunks`` one at a time, then EOF."""

    def __init__(self, chunks=(), protocol=None, sock=None) -> None:
        self.buf = bytearray()
        self.chunks = list(chunks)
        self.sock = sock or FakeSock()
        self.protocol = protocol or http()
        self.peer = PEER

    def recv_more(self) -> bool:
        if not self.chunks:
            return False
        self.buf += self.chunks.pop(0)
        return True

    def peer_text(self) -> str:
        return "%s:%s" % PEER


class FakeLog:
    def __init__(self) -> None:
        self.lines = []

    def warn(self, msg, fields=None):
        self.lines.append(("warn", msg))

    def error(self, msg, fields=None, exc=None):
        self.lines.append(("error", msg))


class FakeWorker:
    def __init__(self, going: bool = False) -> None:
        self.log = FakeLog()
        self.going = going

    def going_away(self) -> bool:
        return self.going


class WsgiInput(unittest.TestCase):
    def test_a_body_in_one_byte_pieces(self):
        data = b"line one\nline two\nlast"
        body = Input(FakeConn(pieces(data + b"GET /next", 1)), LengthReader(len(data)), None)
        self.assertEqual(body.read(), data)
        self.assertEqual(body.read(), b"")
        self.assertTrue(body.eof)

    def test_read_sizes_lines_and_iteration(self):
        data = b"one\ntwo\nthree\nfour"
        body = Input(FakeConn(pieces(data, 3)), LengthReader(len(data)), None)
        self.assertEqual(body.read(2), b"on")
        self.assertEqual(body.readline(), b"e\n")
        self.assertEqual(body.readline(2), b"tw")
        self.assertEqual(body.readlines(), [b"o\n", b"three\n", b"four"])
        body = Input(FakeConn([data]), LengthReader(len(data)), None)
        self.assertEqual(list(body), [b"one\n", b"two\n", b"three\n", b"four"])

    def test_a_chunked_body_split_at_every_byte(self):
        wire = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        body = Input(FakeConn(pieces(wire, 1)), ChunkedReader(), None)
        self.assertEqual(body.read(), b"hello world")

    def test_no_body(self):
        conn = FakeConn([b"GET /next HTTP/1.1\r\n"])
        body = Input(conn, None, None)
        self.assertEqual((body.read(), body.readline(), body.eof), (b"", b"", True))
        self.assertEqual(conn.chunks, [b"GET /next HTTP/1.1\r\n"], "nothing read past the request")

    def test_100_continue_goes_out_on_the_first_read_only(self):
        conn = FakeConn([b"abcd"])
        body = Input(conn, LengthReader(4), CONTINUE)
        self.assertEqual(bytes(conn.sock.sent), b"", "not before the app reads")
        self.assertEqual(body.read(2), b"ab")
        self.assertEqual(body.read(), b"cd")
        self.assertEqual(bytes(conn.sock.sent), CONTINUE)

    def test_an_unread_body_awaited_with_100_continue_is_not_drained(self):
        conn = FakeConn([b"abcd"])
        body = Input(conn, LengthReader(4), CONTINUE)
        self.assertFalse(body.drain(), "the client waits for 100 Continue: close instead")
        self.assertEqual(bytes(conn.sock.sent), b"")

    def test_drain(self):
        conn = FakeConn([b"abc", b"de", b"GET"])
        body = Input(conn, LengthReader(5), None)
        self.assertEqual(body.read(1), b"a")
        self.assertTrue(body.drain())
        self.assertEqual(bytes(conn.buf) + b"".join(conn.chunks), b"GET", "the next request is left")
        big = Input(FakeConn(pieces(b"x" * (MAX_DRAIN_BYTES + 2), 65536)), LengthReader(MAX_DRAIN_BYTES + 2), None)
        self.assertFalse(big.drain(), "too much to drain: close instead")
        self.assertFalse(Input(FakeConn([b"ab"]), LengthReader(5), None).drain(), "the client went away")

    def test_a_client_gone_or_a_bad_chunk_is_a_client_error(self):
        with self.assertRaises(ClientError) as caught:
            Input(FakeConn([b"abc"]), LengthReader(5), None).read()
        self.assertEqual(str(caught.exception), "the client closed the connection in the middle of the request body")
        with self.assertRaises(ClientError) as caught:
            Input(FakeConn([b"zz\r\n"]), ChunkedReader(), None).read()
        self.assertEqual(str(caught.exception), "chunked body: bad chunk size b'zz'")
        self.assertIsInstance(caught.exception, OSError, "apps that catch IOError on reads catch it")


def serve(app, method="GET", protocol=None, context=True, keep=True, sock=None, worker=None):
    """Runs ``app`` for one request; returns (bytes sent, response, app failed, worker)."""
    worker = worker or FakeWorker()
    conn = FakeConn(protocol=protocol, sock=sock)
    response = Response(conn, context, keep, worker, method, "/x")
    failed = run_app(app, {"REQUEST_METHOD": method}, response, worker.log)
    return bytes(conn.sock.sent), response, failed, worker


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!"]


class Responses(unittest.TestCase):
    def test_a_one_element_list_gets_its_length(self):
        sent, r, failed, _ = serve(hello)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n" + DATE_LINE + b"\r\n"
        self.assertEqual(sent, head + b"Hello, World!")
        self.assertFalse(failed)
        self.assertEqual((r.keep, r.tx, r.hsize, r.hcount, r.status), (True, len(sent), len(head), 3, "200 OK"))

    def test_a_generator_is_chunked_and_write_works(self):
        def app(environ, start_response):
            write = start_response("200 OK", [])
            write(b"ab")
            yield b"cde"
            yield b""
            yield bytearray(b"f")
        sent, r, _, _ = serve(app)
        self.assertTrue(sent.endswith(b"\r\n\r\n2\r\nab\r\n3\r\ncde\r\n1\r\nf\r\n0\r\n\r\n"), sent)
        self.assertTrue(r.keep)

    def test_head_sends_no_body(self):
        sent, r, _, _ = serve(hello, method="HEAD")
        self.assertTrue(sent.endswith(b"\r\n\r\n") and b"Content-Length: 13" in sent, sent)
        self.assertTrue(r.keep)

    def test_an_exception_before_the_head_is_a_500(self):
        def app(environ, start_response):
            raise RuntimeError("boom")
        sent, r, failed, worker = serve(app)
        self.assertEqual(
            sent,
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n" + DATE_LINE
            + b"Connection: close\r\n\r\nInternal Server Error\n",
        )
        self.assertTrue(failed)
        self.assertFalse(r.keep)
        self.assertEqual(worker.log.lines, [("error", "exception in GET /x: RuntimeError: boom")])

    def test_an_exception_after_the_head_cuts_the_body(self):
        def app(environ, start_response):
            start_response("200 OK", [])
            yield b"first"
            raise RuntimeError("late")
        sent, r, failed, _ = serve(app)
        self.assertTrue(sent.endswith(b"\r\n\r\n5\r\nfirst\r\n"), "no last chunk: the client sees it cut")
        self.assertTrue(failed)
        self.assertFalse(r.keep)

    def test_start_response_refuses_what_would_break_the_head(self):
        for status, headers in [
            ("200", []), ("OK 200", []), (b"200 OK", []),
            ("200 OK", [("X-Bad", "a\r\nSet-Cookie: x=1")]), ("200 OK", [("Bad Name", "v")]),
            ("200 OK", [("Transfer-Encoding", "chunked")]), ("200 OK", [("X", 1)]), ("200 OK", (("X", "y"),)),
        ]:
            def app(environ, start_response, status=status, headers=headers):
                start_response(status, headers)
                return [b"never"]
            sent, r, failed, _ = serve(app)
            self.assertTrue(sent.startswith(b"HTTP/1.1 500 "), (status, headers))
            self.assertTrue(failed)

    def test_a_header_list_checked_once_is_known_and_another_is_still_checked(self):
        good = [("Content-Type", "text/plain"), ("X-Remembered", "1")]
        for _ in range(2):
            def app(environ, start_response):
                start_response("200 OK", list(good))
                return [b"ok"]
            sent, _, failed, _ = serve(app)
            self.assertTrue(sent.startswith(b"HTTP/1.1 200 OK\r\n"))
            self.assertFalse(failed)
        for headers in [good + [("X-Bad", "a\nb")], [("Content-Type", "text/plain"), ("X-Remembered", 1)],
                        [("Content-Type", "text/plain"), ["X-Remembered", "1"]]]:
            def bad(environ, start_response, headers=headers):
                start_response("200 OK", headers)
                return [b"never"]
            sent, _, failed, _ = serve(bad)
            self.assertTrue(sent.startswith(b"HTTP/1.1 500 "), headers)
            self.assertTrue(failed)

    def test_exc_info_replaces_a_status_not_sent_yet(self):
        def app(environ, start_response):
            start_response("200 OK", [])
            try:
                raise KeyError("k")
            except KeyError:
                import sys
                start_response("503 Service Unavailable", [], sys.exc_info())
            return [b"later"]
        sent, _, failed, _ = serve(app)
        self.assertTrue(sent.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"))
        self.assertFalse(failed)

    def test_content_length_is_held_to(self):
        def long(environ, start_response):
            start_response("200 OK", [("Content-Length", "3")])
            return [b"ab", b"cd"]
        sent, r, _, worker = serve(long)
        self.assertTrue(sent.endswith(b"\r\n\r\nabc"), sent)
        self.assertEqual(worker.log.lines, [("warn", "GET /x: the app sent more than its Content-Length (3); truncated")])
        self.assertTrue(r.keep)

        def short(environ, start_response):
            start_response("200 OK", [("Content-Length", "5")])
            return [b"ab", b"c"]
        _, r, _, worker = serve(short)
        self.assertFalse(r.keep, "the client would wait for the rest: close")
        self.assertEqual(worker.log.lines, [("warn", "GET /x: the app sent 3 bytes of its Content-Length 5; connection closed")])

    def test_close_is_always_called(self):
        closed = []

        class Body:
            def __iter__(self):
                yield b"x"
                raise ValueError("inside")

            def close(self):
                closed.append(True)

        def app(environ, start_response):
            start_response("200 OK", [])
            return Body()
        _, _, failed, _ = serve(app)
        self.assertEqual(closed, [True])
        self.assertTrue(failed)

    def test_a_client_gone_is_a_warning_not_an_app_failure(self):
        sent, r, failed, worker = serve(hello, sock=FakeSock(fail_after=0))
        self.assertEqual(sent, b"")
        self.assertFalse(failed)
        self.assertFalse(r.keep)
        self.assertEqual(worker.log.lines, [("warn", "GET /x: client 10.0.0.7:51234 went away: [Errno 32] Broken pipe")])

    def test_a_worker_going_away_closes_the_connection(self):
        sent, r, _, _ = serve(hello, worker=FakeWorker(going=True))
        self.assertIn(b"\r\nConnection: close\r\n", sent)
        self.assertFalse(r.keep)

    def test_a_regular_file_goes_with_sendfile_and_its_length(self):
        with tempfile.TemporaryFile() as f:
            f.write(b"0123456789")
            f.seek(3)

            def app(environ, start_response):
                start_response("200 OK", [])
                return environ["wsgi.file_wrapper"](f)
            worker = FakeWorker()
            conn = FakeConn()
            response = Response(conn, True, True, worker, "GET", "/f")
            run_app(app, {"wsgi.file_wrapper": FileWrapper}, response, worker.log)
            self.assertIn(b"\r\nContent-Length: 7\r\n", bytes(conn.sock.sent))
            self.assertTrue(bytes(conn.sock.sent).endswith(b"\r\n\r\n3456789"))
            self.assertEqual(response.tx, len(conn.sock.sent))

    def test_uwsgi_responses_are_raw_and_close(self):
        environ = {"SERVER_PROTOCOL": "HTTP/1.0"}
        sent, r, _, _ = serve(hello, protocol=uwsgi(), context=environ, keep=False)
        self.assertEqual(sent, b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!")
        self.assertFalse(r.keep)


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no str")


class FailingHttp(type(http())):
    """HTTP whose response framing raises (a protocol bug)."""

    def response_head(self, *args):
        raise RuntimeError("cannot frame")


class Failures(unittest.TestCase):
    def test_close_raising_or_its_lookup_raising_is_an_app_failure(self):
        class Body:
            def __iter__(self):
                yield b"x"

            @property
            def close(self):
                raise Unprintable()

        def app(environ, start_response):
            start_response("200 OK", [])
            return Body()
        sent, r, failed, worker = serve(app)
        self.assertTrue(sent.endswith(b"\r\n1\r\nx\r\n0\r\n\r\n"), sent)
        self.assertTrue(failed)
        self.assertFalse(r.keep)
        self.assertEqual(worker.log.lines, [("error", "exception in GET /x: Unprintable: <exception str() failed>")])

    def test_a_protocol_that_cannot_frame_gets_the_fixed_500(self):
        sent, r, failed, worker = serve(hello, protocol=FailingHttp(4096, ("a", "80", ""), lambda: DATE))
        self.assertTrue(failed)
        self.assertEqual(sent, ERROR_500_HEAD + ERROR_500)
        self.assertEqual((r.keep, r.status[:3], r.tx, r.hsize), (False, "500", len(sent), len(ERROR_500_HEAD)))
        self.assertEqual(worker.log.lines, [("error", "exception in GET /x: RuntimeError: cannot frame")])


class RequestBookkeeping(unittest.TestCase):
    """Worker.handle ends every request's bookkeeping once, whatever escapes run_app."""

    def worker(self):
        import os
        import struct

        from emperor_worker import worker as worker_module
        from emperor_worker.contract import SLOT_FORMAT, SLOT_SIZE
        board = tempfile.TemporaryFile()
        board.truncate(SLOT_SIZE)
        self.addCleanup(board.close)
        spec = {"vassal": "t", "id": 1, "scoreboard": {"fd": board.fileno(), "index": 0}, "heartbeatIntervalMs": 1000,
                "bufferSize": 4096, "requestLog": {"enabled": False}}
        w = worker_module.Worker(spec, None)
        self.addCleanup(w.server.selector.close)
        w.log = FakeLog()
        w.status = worker_module.IDLE
        w.exact_slot = True  # every start and end written: the slot is the worker's state

        def slot():
            return struct.unpack(SLOT_FORMAT, os.pread(board.fileno(), SLOT_SIZE, 0))
        return w, worker_module, slot

    def request(self):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "QUERY_STRING": "", "REQUEST_URI": "/x"}
        return (environ, None, None, True, True)

    def test_an_exception_escaping_run_app_still_counts_the_request_and_frees_the_slot(self):
        w, worker_module, slot = self.worker()
        for head_sent in (False, True):
            def escaping(app, environ, response, log):
                if head_sent:
                    response.start_response("200 OK", [])
                    response.send(b"", None)
                raise Unprintable()
            self.addCleanup(setattr, worker_module, "run_app", worker_module.run_app)
            worker_module.run_app = escaping
            conn = FakeConn()
            keep = w.handle(conn, self.request())
            self.assertFalse(keep, "the connection closes")
            sent = bytes(conn.sock.sent)
            if head_sent:
                self.assertTrue(sent.startswith(b"HTTP/1.1 200 OK\r\n"), sent)
            else:
                self.assertTrue(sent.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), sent)
                self.assertTrue(sent.endswith(b"\r\n\r\n" + ERROR_500), sent)
        self.assertEqual(w.log.lines, [("error", "exception in GET /x: Unprintable: <exception str() failed>")] * 2)
        fields = slot()
        self.assertEqual((fields[2], fields[4], fields[6], fields[7]), (worker_module.IDLE, 0, 2, 2), "idle, nothing in flight, 2 requests, 2 exceptions")


if __name__ == "__main__":
    unittest.main()
