"""FastCGI (protocols/fastcgi.py): requests as nginx and lighttpd send them, split at every
byte and coalesced, with padding and 1- and 4-byte lengths; management records, refused
roles, multiplexing and aborts answered as the spec says; refused input with the same
reasons as the Node parser; responses as CGI in STDOUT records; hostile input; and
manage-script-name (mount.py)."""

import random
import struct
import unittest

from helpers import (
    NGINX_PARAMS, PEER, fastcgi, fcgi_pairs, fcgi_record, fcgi_records, fcgi_request, pieces, read_body,
)
from test_wsgi import FakeConn, FakeWorker

from emperor_worker.mount import manage_script_name
from emperor_worker.protocols import ProtocolError
from emperor_worker.protocols.fastcgi import Context, StdinReader, pairs
from emperor_worker.wsgi import Response, run_app

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 1, 2, 3, 4, 5, 6, 9, 10, 11


def begin(request_id: int, role: int = 1, flags: int = 0) -> bytes:
    return fcgi_record(BEGIN, request_id, struct.pack(">HB5x", role, flags))


def head_in_pieces(p, data: bytes, size: int):
    """Feeds ``data`` ``size`` bytes at a time until the head is ready; (request, buffer)."""
    buf = bytearray()
    chunks = pieces(data, size)
    while True:
        if p.head_ready(buf):
            return p.read_request(buf, False, PEER), buf, chunks
        self_check = bytes(buf)
        assert p.read_request(buf, False, PEER) is None and bytes(buf) == self_check, "not ready: no request, nothing taken"
        if not chunks:
            raise AssertionError("the head never became ready")
        buf += chunks.pop(0)


def reason(data: bytes, buffer_size: int = 4096, eof: bool = False) -> str:
    p = fastcgi(buffer_size)
    buf = bytearray(data)
    if not eof:
        assert p.head_ready(buf), "head_ready must let the loop refuse %r" % data[:40]
    with unittest.TestCase().assertRaises(ProtocolError) as caught:
        p.read_request(buf, eof, PEER)
    assert caught.exception.response == b"", "a refusal closes the connection without an answer (as uWSGI)"
    return caught.exception.reason


class Requests(unittest.TestCase):
    def test_nginx_params_become_the_environ(self):
        data = fcgi_request(NGINX_PARAMS)
        (environ, body, interim, keep, ctx), buf, _ = head_in_pieces(fastcgi(), data, len(data))
        want = {k.decode(): v.decode() for k, v in NGINX_PARAMS}
        want.update({"PATH_INFO": "", "FCGI_ROLE": "RESPONDER", "wsgi.url_scheme": "http"})
        self.assertEqual(environ, want)
        self.assertIsInstance(body, StdinReader)
        self.assertIsNone(interim)
        self.assertFalse(keep, "no FCGI_KEEP_CONN: the connection closes after the request")
        self.assertIsInstance(ctx, Context)
        self.assertEqual(read_body(body, [bytes(buf)]), (b"", b""), "an empty body, and nothing after it")

    def test_split_at_every_byte_with_a_body_in_many_records(self):
        data = fcgi_request(NGINX_PARAMS + [(b"CONTENT_LENGTH", b"70000"), (b"HTTPS", b"on")], b"x" * 70000, stdin_record=999)
        for size in (1, 2, 7, 8, 9, 100, 65536):
            (environ, body, _, _, _), buf, rest = head_in_pieces(fastcgi(), data, size)
            self.assertEqual((environ["CONTENT_LENGTH"], environ["wsgi.url_scheme"]), ("70000", "https"))
            got, left = read_body(body, [bytes(buf)] + rest)
            self.assertEqual((len(got), left), (70000, b""), "pieces of %d" % size)

    def test_padding_of_0_to_255_bytes_is_skipped(self):
        for padding in (0, 1, 7, 200, 255):
            data = fcgi_request(NGINX_PARAMS, b"body", stdin_record=1, padding=padding)
            (environ, body, _, _, _), buf, rest = head_in_pieces(fastcgi(), data, 5)
            self.assertEqual(environ["REQUEST_URI"], "/a?b=1")
            self.assertEqual(read_body(body, [bytes(buf)] + rest), (b"body", b""), "padding %d" % padding)

    def test_one_and_four_byte_lengths(self):
        block = fcgi_pairs([(b"A", b""), (b"N" * 127, b"x"), (b"M" * 128, b"v" * 128), (b"BIG", b"b" * 70000)])
        self.assertEqual(block[:3], b"\x01\x00A")
        decoded = pairs(block)
        self.assertEqual((decoded["N" * 127], decoded["M" * 128], len(decoded["BIG"])), ("x", "v" * 128, 70000))
        self.assertEqual(fcgi_pairs([(b"K", b"z" * 200)])[:5], b"\x01\x80\x00\x00\xc8", "big-endian, top bit set")
        self.assertEqual(pairs(fcgi_pairs([(b"K", b"1"), (b"K", b"2")])), {"K": "2"}, "a repeated name keeps its last value")

    def test_keep_conn_requests_one_after_the_other(self):
        p = fastcgi()
        first = fcgi_request(NGINX_PARAMS, b"one", keep=True)
        second = fcgi_request([(b"REQUEST_URI", b"/two")], b"two", keep=True)
        buf = bytearray(first + second)
        self.assertTrue(p.head_ready(buf))
        environ, body, _, keep, ctx = p.read_request(buf, False, PEER)
        self.assertTrue(keep)
        self.assertEqual(body.read(buf, 100), b"one")
        self.assertEqual(body.read(buf, 100), b"")
        self.assertEqual(ctx.end(), fcgi_record(STDOUT, 1) + fcgi_record(END, 1, b"\0" * 8))
        self.assertEqual(bytes(buf), second, "the next request is untouched")
        environ, body, _, keep, _ = p.read_request(buf, False, PEER)
        self.assertEqual(environ["REQUEST_URI"], "/two")
        self.assertEqual(read_body(body, [bytes(buf)]), (b"two", b""))

    def test_an_authorizer_gets_no_body(self):
        data = fcgi_request(NGINX_PARAMS, role=2)
        buf = bytearray(data)
        environ, body, _, _, _ = fastcgi().read_request(buf, False, PEER)
        self.assertEqual(environ["FCGI_ROLE"], "AUTHORIZER")
        self.assertIsNone(body)

    def test_the_rest_of_an_unread_body_is_dropped_before_the_next_request(self):
        p = fastcgi()
        buf = bytearray(fcgi_request(NGINX_PARAMS, b"unread" * 1000, keep=True, stdin_record=100))
        _, body, _, _, ctx = p.read_request(buf, False, PEER)
        self.assertEqual(body.read(buf, 3), b"unr")
        ctx.end()
        self.assertEqual(body.read(buf, 100), b"", "after END_REQUEST the body reads as over")
        buf += fcgi_request([(b"REQUEST_URI", b"/next")])
        self.assertTrue(p.head_ready(buf))
        self.assertEqual(p.read_request(buf, False, PEER)[0]["REQUEST_URI"], "/next")


class Management(unittest.TestCase):
    def reply(self, data: bytes, buffer_size: int = 4096):
        buf = bytearray(data)
        p = fastcgi(buffer_size)
        self.assertTrue(p.head_ready(buf))
        environ, sent, _, keep, _ = p.read_request(buf, False, PEER)
        self.assertIsNone(environ, "answered without the app")
        return fcgi_records(sent), keep, bytes(buf)

    def test_get_values_names_what_it_knows(self):
        asked = fcgi_pairs([(b"FCGI_MAX_CONNS", b""), (b"FCGI_NO_SUCH", b""), (b"FCGI_MPXS_CONNS", b""), (b"FCGI_MAX_REQS", b"")])
        records, keep, rest = self.reply(fcgi_record(GET_VALUES, 0, asked) + b"\x01")
        self.assertEqual(len(records), 1)
        rtype, rid, content = records[0]
        self.assertEqual((rtype, rid), (GET_VALUES_RESULT, 0))
        self.assertEqual(pairs(content), {"FCGI_MAX_CONNS": "1024", "FCGI_MPXS_CONNS": "0", "FCGI_MAX_REQS": "8"})
        self.assertTrue(keep)
        self.assertEqual(rest, b"\x01")

    def test_an_unknown_management_record_gets_unknown_type(self):
        records, keep, _ = self.reply(fcgi_record(42, 0, b"??", 3))
        self.assertEqual(records, [(UNKNOWN_TYPE, 0, b"\x2a" + b"\0" * 7)])

    def test_a_filter_or_unknown_role_gets_unknown_role(self):
        records, keep, rest = self.reply(fcgi_request(NGINX_PARAMS, b"data", role=3))
        self.assertEqual(records, [(END, 1, b"\0\0\0\0\x03\0\0\0")])
        self.assertFalse(keep, "without FCGI_KEEP_CONN the connection closes after the answer")
        p = fastcgi()
        buf = bytearray(rest)
        self.assertFalse(p.head_ready(buf), "the refused request's records are dropped")
        self.assertEqual(bytes(buf), b"")
        records, keep, _ = self.reply(begin(4, 99, 1))
        self.assertTrue(keep)

    def test_a_second_begin_request_gets_cant_mpx_conn_wherever_it_comes(self):
        # In the head: answered with the response's first bytes.
        p = fastcgi()
        data = begin(1) + begin(2) + fcgi_record(PARAMS, 1, fcgi_pairs(NGINX_PARAMS)) + fcgi_record(PARAMS, 1) + fcgi_record(STDIN, 1)
        buf = bytearray(data)
        environ, body, _, _, ctx = p.read_request(buf, False, PEER)
        head = p.response_head("200 OK", [], 0, False, False, ctx)[0]
        self.assertEqual(fcgi_records(head)[0], (END, 2, b"\0\0\0\0\x01\0\0\0"))
        # With the body: answered before the next STDOUT record.
        buf = bytearray(fcgi_request(NGINX_PARAMS)[:-8] + begin(3) + fcgi_record(GET_VALUES, 0, fcgi_pairs([(b"FCGI_MPXS_CONNS", b"")])) + fcgi_record(STDIN, 1))
        environ, body, _, _, ctx = p.read_request(buf, False, PEER)
        head, _, frame, end, _, _ = p.response_head("200 OK", [], None, False, False, ctx)
        self.assertEqual([r[:2] for r in fcgi_records(head)], [(STDOUT, 1)])
        self.assertEqual(body.read(buf, 10), b"", "the app reads its body after its head went out")
        self.assertEqual([r[:2] for r in fcgi_records(frame(b"body"))], [(END, 3), (GET_VALUES_RESULT, 0), (STDOUT, 1)])
        # Behind the request, before its END_REQUEST: answered with it.
        buf = bytearray(fcgi_request(NGINX_PARAMS) + fcgi_request(NGINX_PARAMS, b"other", request_id=9))
        environ, body, _, _, ctx = p.read_request(buf, False, PEER)
        self.assertEqual(body.read(buf, 10), b"")
        self.assertEqual([r[:2] for r in fcgi_records(ctx.end())], [(END, 9), (STDOUT, 1), (END, 1)])
        self.assertEqual(bytes(buf), b"", "request 9's records are gone with it")

    def test_an_abort_ends_the_request_while_its_body_is_read(self):
        buf = bytearray(fcgi_request(NGINX_PARAMS)[:-8] + fcgi_record(STDIN, 1, b"part") + fcgi_record(ABORT, 7) + fcgi_record(ABORT, 1))
        _, body, _, _, _ = fastcgi().read_request(buf, False, PEER)
        self.assertEqual(body.read(buf, 100), b"part")
        with self.assertRaises(ProtocolError) as caught:
            body.read(buf, 100)
        self.assertEqual(caught.exception.reason, "the front end aborted the request (FCGI_ABORT_REQUEST)")


class Refusals(unittest.TestCase):
    """The reasons are the Node parser's (packages/vassal/src/worker/node/protocols/fastcgi-records.ts)."""

    def test_reasons(self):
        self.assertEqual(reason(b"GET / HTTP/1.1\r\n\r\n"), "unsupported FastCGI version 71 (type 69, at byte 0; only 1 exists)")
        self.assertEqual(reason(fcgi_record(BEGIN, 1, b"\0" * 7)), "BEGIN_REQUEST of 7 bytes for request 1 (8 expected)")
        self.assertEqual(reason(begin(1) + begin(1) + fcgi_record(PARAMS, 1)), "a second BEGIN_REQUEST for request 1, which is active")
        self.assertEqual(reason(begin(1) + fcgi_record(STDIN, 1, b"x") + fcgi_record(PARAMS, 1)), "STDIN before the end of PARAMS for request 1")
        self.assertEqual(
            reason(begin(1) + fcgi_record(PARAMS, 1, b"\x03\x00A") + fcgi_record(PARAMS, 1)),
            "request 1: malformed name-value pair at byte 0 (name of 3 and value of 0 bytes run past the end)",
        )
        big = fcgi_request([(b"HTTP_COOKIE", b"c" * 5000)])
        self.assertEqual(reason(big), "params of request 1 larger than buffer-size (4096 bytes)")
        self.assertIsNotNone(fastcgi(8192).read_request(bytearray(big), False, PEER), "within a larger buffer-size")
        # Bounded as they come: refused before the stream ends.
        self.assertEqual(reason(begin(1) + fcgi_record(PARAMS, 1, b"\1" * 4097)), "params of request 1 larger than buffer-size (4096 bytes)")
        self.assertEqual(reason(begin(1) + fcgi_record(7, 1, b"x" * 60000) + fcgi_record(7, 1, b"x" * 60000)), "request 1: more than 65536 bytes of other records around its head")

    def test_a_head_cut_short_by_the_front_end(self):
        data = fcgi_request(NGINX_PARAMS)
        self.assertEqual(
            reason(data[:30], eof=True),
            "the front end closed the connection in the middle of a record or request head (30 bytes)",
        )
        self.assertIsNone(fastcgi().read_request(bytearray(), True, PEER), "closing between requests is no error")


class Hostile(unittest.TestCase):
    SEEDS = [
        fcgi_request(NGINX_PARAMS, b"hello", keep=True),
        fcgi_request(NGINX_PARAMS + [(b"CONTENT_LENGTH", b"300")], b"z" * 300, stdin_record=7, padding=3),
        fcgi_record(GET_VALUES, 0, fcgi_pairs([(b"FCGI_MAX_CONNS", b"")])) + fcgi_request([], role=2),
        begin(1) + begin(2) + fcgi_record(PARAMS, 1) + fcgi_record(ABORT, 1) + fcgi_record(STDIN, 1),
    ]

    def test_random_mutations_never_raise_anything_but_a_refusal(self):
        rng = random.Random(1818)
        for _ in range(2000):
            data = bytearray(rng.choice(self.SEEDS))
            for _ in range(rng.randint(1, 5)):
                op = rng.randrange(5)
                at = rng.randrange(len(data) + 1)
                if op == 0 and data:
                    data[rng.randrange(len(data))] = rng.randrange(256)
                elif op == 1:
                    del data[at:at + rng.randint(1, 8)]
                elif op == 2 and len(data) > 6:  # a length that lies
                    i = rng.randrange(len(data) - 2)
                    data[i:i + 2] = rng.randrange(65536).to_bytes(2, "big")
                elif op == 3:
                    del data[at:]
                else:
                    data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 30)))
            self.drive(bytes(data), rng)

    def drive(self, data: bytes, rng: random.Random) -> None:
        p = fastcgi()
        buf = bytearray()
        chunks = pieces(data, rng.choice([1, 3, 64, 1 << 20]))
        body = None
        while True:
            if body is not None:
                try:
                    got = body.read(buf, rng.choice([1, 100]))
                except ProtocolError:
                    return
                if got is None:
                    if not chunks:
                        return
                    buf += chunks.pop(0)
                elif not got:
                    body = None
                continue
            try:
                ready = p.head_ready(buf)
                request = p.read_request(buf, not chunks, PEER) if ready or not chunks else None
            except ProtocolError as err:
                self.assertIsInstance(err.reason, str)
                return
            if request is None:
                if ready:
                    self.fail("ready means a request, a reply or a refusal: %r" % bytes(buf))
                if not chunks:
                    return
                buf += chunks.pop(0)
                continue
            environ, body, _, keep, ctx = request
            if environ is None:  # a reply: the bytes to send
                self.assertIsInstance(body, bytes)
                body = None
            else:
                self.assertTrue(all(type(k) is str and type(v) is str for k, v in environ.items() if not k.startswith("wsgi.")))
                head = p.response_head("200 OK", [("X", "y")], None, False, keep, ctx)
                self.assertIsInstance(head[0] + head[2](b"b"), bytes)
            if environ is not None and body is None:
                self.assertIsInstance(ctx.end(), bytes)
            if not keep:
                return


class Responses(unittest.TestCase):
    def serve(self, app, method="GET", keep=True):
        p = fastcgi()
        buf = bytearray(fcgi_request(NGINX_PARAMS, keep=keep))
        environ, reader, _, keep_alive, ctx = p.read_request(buf, False, PEER)
        conn = FakeConn(protocol=p)
        conn.buf = buf
        worker = FakeWorker()
        response = Response(conn, ctx, keep_alive, worker, method, "/a?b=1")
        environ["REQUEST_METHOD"] = method
        failed = run_app(app, environ, response, worker.log)
        return fcgi_records(bytes(conn.sock.sent)), response, failed

    def test_a_cgi_response_in_stdout_records_then_end_request(self):
        def app(environ, start_response):
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Connection", "close")])
            return [b"nope"]

        records, r, failed = self.serve(app, keep=True)
        self.assertFalse(failed)
        self.assertEqual(records, [
            (STDOUT, 1, b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\n"),
            (STDOUT, 1, b"nope"),
            (STDOUT, 1, b""),
            (END, 1, b"\0" * 8),
        ])
        self.assertTrue(r.keep, "FCGI_KEEP_CONN: the connection serves the next request")

    def test_a_streamed_body_in_records_of_at_most_65535_bytes(self):
        def app(environ, start_response):
            start_response("200 OK", [])
            yield b"a" * 150000
            yield b"b"

        records, r, _ = self.serve(app, keep=False)
        self.assertEqual([len(c) for t, _, c in records if t == STDOUT][1:], [65535, 65535, 18930, 1, 0])
        self.assertEqual(records[-1][0], END)
        self.assertFalse(r.keep)

    def test_an_exception_is_a_500_in_records(self):
        def app(environ, start_response):
            raise RuntimeError("boom")

        records, r, failed = self.serve(app)
        self.assertTrue(failed)
        self.assertEqual([t for t, _, _ in records], [STDOUT, STDOUT, STDOUT, END])
        self.assertTrue(records[0][2].startswith(b"Status: 500 Internal Server Error\r\n"))
        self.assertEqual(records[1][2], b"Internal Server Error\n")
        # END_REQUEST ends it cleanly: a kept connection stays (closing it raced nginx's reuse
        # of it from its cache: a logged reset, and the next request retried elsewhere).
        self.assertTrue(r.keep, "FCGI_KEEP_CONN: the connection serves the next request")
        _, r, _ = self.serve(app, keep=False)
        self.assertFalse(r.keep, "without FCGI_KEEP_CONN it closes, as after any request")

    def test_an_unread_body_is_read_to_its_end_before_end_request(self):
        p = fastcgi()
        data = fcgi_request(NGINX_PARAMS + [(b"CONTENT_LENGTH", b"3000")], b"u" * 3000, keep=True, stdin_record=100)
        following = fcgi_request([(b"REQUEST_URI", b"/next")], keep=True)
        buf = bytearray(data[:400])
        environ, reader, _, keep_alive, ctx = p.read_request(buf, False, PEER)
        conn = FakeConn(pieces(data[400:] + following, 250), protocol=p)
        conn.buf = buf
        response = Response(conn, ctx, keep_alive, FakeWorker(), "GET", "/")
        self.assertFalse(run_app(lambda e, s: (s("200 OK", []), [b"ok"])[1], environ, response, FakeWorker().log))
        self.assertEqual([t for t, _, _ in fcgi_records(bytes(conn.sock.sent))], [STDOUT, STDOUT, STDOUT, END])
        self.assertTrue(reader.done, "the body was read to its empty STDIN record first")
        buf += b"".join(conn.chunks)
        self.assertTrue(p.head_ready(buf))
        self.assertEqual(p.read_request(buf, False, PEER)[0]["REQUEST_URI"], "/next", "the next request is whole")

    def test_head_sends_no_body(self):
        records, _, _ = self.serve(lambda e, s: (s("200 OK", []), [b"body"])[1], method="HEAD")
        self.assertEqual([c for t, _, c in records if t == STDOUT], [b"Status: 200 OK\r\nContent-Length: 4\r\n\r\n", b""])


class ManageScriptName(unittest.TestCase):
    def split(self, mountpoint, **environ):
        manage_script_name(environ, mountpoint)
        return environ.get("SCRIPT_NAME"), environ.get("PATH_INFO")

    def test_lighttpd_rewrite_trick_at_the_root(self):
        self.assertEqual(self.split("", SCRIPT_NAME="/admin.fcgi", PATH_INFO="/admin/login/"), ("", "/admin/login/"))

    def test_nginx_stock_fastcgi_params(self):
        self.assertEqual(self.split("", SCRIPT_NAME="/a/b", PATH_INFO=""), ("", "/a/b"))
        self.assertEqual(self.split("/a", SCRIPT_NAME="/a/b"), ("/a", "/b"))

    def test_a_mountpoint_takes_whole_segments(self):
        self.assertEqual(self.split("/blog", SCRIPT_NAME="", PATH_INFO="/blog/2026/"), ("/blog", "/2026/"))
        self.assertEqual(self.split("/blog", SCRIPT_NAME="", PATH_INFO="/blog"), ("/blog", ""))
        self.assertEqual(self.split("/blog", SCRIPT_NAME="/x", PATH_INFO="/blogger"), ("/x", "/blogger"), "not under it: as it came")
        self.assertEqual(self.split("/blog", SCRIPT_NAME="", PATH_INFO=""), ("", ""))


if __name__ == "__main__":
    unittest.main()
