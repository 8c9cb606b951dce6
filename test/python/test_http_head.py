"""HTTP request heads (protocols/http.py): whole, split, pipelined, cut short, too large,
malformed, and what each header does to the environ and the framing."""

import unittest

from helpers import PEER, SERVER, http

from emperor_worker.protocols import ProtocolError
from emperor_worker.protocols.base import LengthReader
from emperor_worker.protocols.http import CONTINUE, ChunkedReader

GET = b"GET /a%20b/caf%C3%A9?x=1&y=%20 HTTP/1.1\r\nHost: example.test:8080\r\nUser-Agent: t\r\n\r\n"


def parse(data: bytes, **kw):
    """The request in ``data`` (which must hold a whole head), and what is left after it."""
    p = http(**kw)
    buf = bytearray(data)
    assert p.head_ready(buf), data
    request = p.read_request(buf, False, PEER)
    assert request is not None
    return request, bytes(buf)


def refused(data: bytes, **kw) -> ProtocolError:
    p = http(**kw)
    buf = bytearray(data)
    assert p.head_ready(buf), "head_ready must let the loop refuse %r" % data
    with unittest.TestCase().assertRaises(ProtocolError) as caught:
        p.read_request(buf, False, PEER)
    return caught.exception


class WholeHeads(unittest.TestCase):
    def test_a_get_becomes_a_pep3333_environ(self):
        (environ, body, interim, keep_alive, http11), rest = parse(GET)
        self.assertEqual(environ, {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": "/a b/caf\xc3\xa9",  # the bytes, one character each
            "QUERY_STRING": "x=1&y=%20",
            "REQUEST_URI": "/a%20b/caf%C3%A9?x=1&y=%20",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_NAME": "example.test",
            "SERVER_PORT": "8080",
            "REMOTE_ADDR": "10.0.0.7",
            "REMOTE_PORT": "51234",
            "wsgi.url_scheme": "http",
            "HTTP_HOST": "example.test:8080",
            "HTTP_USER_AGENT": "t",
        })
        self.assertIsNone(body)
        self.assertIsNone(interim)
        self.assertTrue(keep_alive)
        self.assertIs(http11, True)
        self.assertEqual(rest, b"")

    def test_header_names_map_to_cgi_keys_and_repeats_join(self):
        (environ, *_), _ = parse(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nX-Multi: a\r\n"
            b"x-multi: b\r\nCookie: c=1\r\nCookie: d=2\r\nX-Pad: \t  spaced \t\r\nX-Latin: \xe9\xff\r\n\r\n"
        )
        self.assertEqual(environ["CONTENT_TYPE"], "text/plain")
        self.assertEqual(environ["CONTENT_LENGTH"], "0")
        self.assertNotIn("HTTP_CONTENT_TYPE", environ)
        self.assertEqual(environ["HTTP_X_MULTI"], "a, b")
        self.assertEqual(environ["HTTP_COOKIE"], "c=1; d=2")
        self.assertEqual(environ["HTTP_X_PAD"], "spaced")
        self.assertEqual(environ["HTTP_X_LATIN"], "\xe9\xff")

    def test_header_names_with_underscores_are_dropped_as_nginx_does(self):
        (environ, *_), _ = parse(b"GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n")
        self.assertEqual(environ["HTTP_X_FORWARDED_FOR"], "1.2.3.4")

    def test_server_name_and_port_come_from_host(self):
        cases = {
            b"example.test:81": ("example.test", "81"),
            b"example.test": ("example.test", "80"),
            b"[::1]:8080": ("[::1]", "8080"),
            b"[::1]": ("[::1]", "80"),
        }
        for host, want in cases.items():
            (environ, *_), _ = parse(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            self.assertEqual((environ["SERVER_NAME"], environ["SERVER_PORT"]), want, host)
        (environ, *_), _ = parse(b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual((environ["SERVER_NAME"], environ["SERVER_PORT"]), SERVER[:2], "no Host: the listener's address")

    def test_a_unix_peer_has_no_remote_address(self):
        p = http(server=("localhost", "80", "/run/app.sock"))
        buf = bytearray(b"GET / HTTP/1.0\r\n\r\n")
        environ = p.read_request(buf, False, "")[0]
        self.assertEqual((environ["REMOTE_ADDR"], environ["REMOTE_PORT"]), ("", ""))
        self.assertEqual((environ["SERVER_NAME"], environ["SERVER_PORT"]), ("localhost", "80"))

    def test_request_targets(self):
        (environ, *_), _ = parse(b"GET http://example.test/x/y?z HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual((environ["REQUEST_URI"], environ["PATH_INFO"], environ["QUERY_STRING"]), ("/x/y?z", "/x/y", "z"))
        (environ, *_), _ = parse(b"GET HTTPS://example.test HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(environ["REQUEST_URI"], "/")
        (environ, *_), _ = parse(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual((environ["REQUEST_METHOD"], environ["PATH_INFO"]), ("OPTIONS", "*"))

    def test_keep_alive_follows_the_version_and_connection(self):
        cases = [
            (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", True),
            (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", False),
            (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, Upgrade\r\n\r\n", True),
            (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade, CLOSE\r\n\r\n", False),
            (b"GET / HTTP/1.0\r\n\r\n", False),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
        ]
        for data, want in cases:
            (_, _, _, keep_alive, _), _ = parse(data)
            self.assertIs(keep_alive, want, data)

    def test_body_framing(self):
        (_, body, _, _, _), rest = parse(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
        self.assertIsInstance(body, LengthReader)
        self.assertEqual(rest, b"hello", "the body stays in the buffer for the body reader")
        for cl in (b"0", b"000"):
            (_, body, _, _, _), _ = parse(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + cl + b"\r\n\r\n")
            self.assertIsNone(body, cl)
        for te in (b"chunked", b"gzip, chunked", b"Chunked"):
            (_, body, _, _, _), _ = parse(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + te + b"\r\n\r\n")
            self.assertIsInstance(body, ChunkedReader, te)

    def test_expect_100_continue_only_for_a_body_on_http11(self):
        expect = b"Expect: 100-Continue\r\n"
        (_, _, interim, _, _), _ = parse(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n" + expect + b"\r\n")
        self.assertEqual(interim, CONTINUE)
        self.assertEqual(CONTINUE, b"HTTP/1.1 100 Continue\r\n\r\n")
        (_, _, interim, _, _), _ = parse(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n" + expect + b"\r\n")
        self.assertEqual(interim, CONTINUE)
        (_, _, interim, _, _), _ = parse(b"GET / HTTP/1.1\r\nHost: h\r\n" + expect + b"\r\n")
        self.assertIsNone(interim, "no body, nothing to wait for")
        (_, _, interim, _, _), _ = parse(b"POST / HTTP/1.0\r\nContent-Length: 4\r\n" + expect + b"\r\n")
        self.assertIsNone(interim, "HTTP/1.0 has no interim responses")


class SplitAndCoalesced(unittest.TestCase):
    def test_a_head_split_at_every_byte_waits_then_parses_the_same(self):
        whole, _ = parse(GET)
        p = http()
        buf = bytearray()
        for i, byte in enumerate(GET):
            buf.append(byte)
            ready = p.head_ready(buf)
            if i < len(GET) - 1:
                self.assertFalse(ready, "ready after %d of %d bytes" % (i + 1, len(GET)))
                self.assertIsNone(p.read_request(buf, False, PEER))
                self.assertEqual(bytes(buf), GET[: i + 1], "nothing consumed while waiting")
        self.assertTrue(ready)
        self.assertEqual(p.read_request(buf, False, PEER), whole)

    def test_a_head_in_two_pieces_cut_anywhere(self):
        whole, _ = parse(GET)
        for cut in range(1, len(GET)):
            p = http()
            buf = bytearray(GET[:cut])
            self.assertFalse(p.head_ready(buf), cut)
            buf += GET[cut:]
            self.assertTrue(p.head_ready(buf), cut)
            self.assertEqual(p.read_request(buf, False, PEER), whole, cut)

    def test_pipelined_requests_come_out_one_at_a_time(self):
        data = (
            b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
            b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
            b"GET /4 HT"
        )
        p = http()
        buf = bytearray(data)
        paths = []
        while p.head_ready(buf):
            environ, body, _, keep_alive, _ = p.read_request(buf, False, PEER)
            paths.append((environ["PATH_INFO"], keep_alive))
            if body is not None:
                self.assertEqual(body.read(buf, 100), b"abc")
                self.assertEqual(body.read(buf, 100), b"")
        self.assertEqual(paths, [("/1", True), ("/2", True), ("/3", False)])
        self.assertEqual(bytes(buf), b"GET /4 HT", "the next head's start waits for the rest")

    def test_empty_lines_before_a_request_are_ignored(self):
        (environ, *_), _ = parse(b"\r\n\r\n\r\nGET /x HTTP/1.0\r\n\r\n")
        self.assertEqual(environ["PATH_INFO"], "/x")
        p = http()
        buf = bytearray(b"\r\n\r\n")
        self.assertFalse(p.head_ready(buf), "blank lines alone are not a head")
        self.assertEqual(bytes(buf), b"", "and they are dropped, so they start no head timeout")


class CutShortAndTooLarge(unittest.TestCase):
    def test_a_head_cut_short_by_the_client_closing_is_no_request(self):
        p = http()
        buf = bytearray(GET[:20])
        self.assertIsNone(p.read_request(buf, True, PEER), "the connection just closes, with no log line")

    def test_a_head_over_buffer_size_is_refused_without_waiting_for_its_end(self):
        p = http(buffer_size=64)
        buf = bytearray(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"x" * 40)
        self.assertTrue(p.head_ready(buf), "more than buffer-size of a head: refuse it now")
        err = refused(bytes(buf), buffer_size=64)
        self.assertEqual(err.reason, "request head larger than buffer-size (64 bytes)")
        self.assertEqual(
            err.response,
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: 36\r\n"
            b"Connection: close\r\n\r\n431 Request Header Fields Too Large\n",
        )

    def test_a_whole_head_counts_its_blank_line_against_buffer_size(self):
        head = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
        parse(head, buffer_size=len(head))
        err = refused(head, buffer_size=len(head) - 1)
        self.assertTrue(err.response.startswith(b"HTTP/1.1 431 "))


class Malformed(unittest.TestCase):
    def check(self, data: bytes, status: bytes, reason: str) -> None:
        err = refused(data)
        self.assertEqual(err.reason, reason, data)
        self.assertTrue(err.response.startswith(b"HTTP/1.1 " + status + b"\r\n"), err.response)
        self.assertIn(b"\r\nConnection: close\r\n", err.response)

    def test_request_lines(self):
        self.check(b"GARBAGE\r\n\r\n", b"400 Bad Request", "malformed request line b'GARBAGE'")
        self.check(b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n", b"400 Bad Request", "malformed request line b'GET /  HTTP/1.1'")
        self.check(b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", b"400 Bad Request", "malformed method b'G(T'")
        self.check(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", b"505 HTTP Version Not Supported", "HTTP version b'HTTP/2.0'")
        self.check(b"GET / FOO/1.1\r\nHost: h\r\n\r\n", b"400 Bad Request", "malformed request line b'GET / FOO/1.1'")
        self.check(b"GET abc HTTP/1.1\r\nHost: h\r\n\r\n", b"400 Bad Request", "malformed request target b'abc'")

    def test_header_lines(self):
        self.check(b"GET / HTTP/1.1\r\nHost: h\r\nNo colon here\r\n\r\n", b"400 Bad Request", "malformed header line b'No colon here'")
        # obs-fold (RFC 9112 5.2) and a space before the colon (5.1) are refused, not guessed at.
        self.check(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n continued\r\n\r\n", b"400 Bad Request", "malformed header line b' continued'")
        self.check(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", b"400 Bad Request", "malformed header line b'Host : h'")

    def test_http11_needs_host(self):
        self.check(b"GET / HTTP/1.1\r\n\r\n", b"400 Bad Request", "HTTP/1.1 request without Host")

    def test_ambiguous_or_unknown_framing(self):
        self.check(
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            b"400 Bad Request", "both Transfer-Encoding and Content-Length",
        )
        self.check(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", b"501 Not Implemented", "transfer coding 'gzip'")
        for cl in ("abc", "-1", "1e3", " ", "1" * 19, "\xb2"):  # latin-1 ²: str.isdigit() says yes, int() no
            self.check(
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + cl.encode("latin-1") + b"\r\n\r\n",
                b"400 Bad Request", "bad Content-Length %r" % cl.strip(),
            )

    def test_a_long_bad_line_is_quoted_short(self):
        err = refused(b"X" * 300 + b"\r\n\r\n")
        self.assertEqual(err.reason, "malformed request line %r" % (b"X" * 100))


class Refusals(unittest.TestCase):
    def test_log_lines_and_the_timeout_answer(self):
        p = http()
        self.assertEqual(p.refusal("1.2.3.4:5", "malformed method b'X'", False), ("bad HTTP request from 1.2.3.4:5: malformed method b'X'", None))
        self.assertEqual(
            p.refusal("1.2.3.4:5", "request head not complete 4 s after its first byte (25 bytes)", True),
            ("HTTP request from 1.2.3.4:5: request head not complete 4 s after its first byte (25 bytes); connection closed", {"peer": "1.2.3.4:5"}),
        )
        self.assertTrue(p.timeout_response.startswith(b"HTTP/1.1 408 Request Timeout\r\n"))
        self.assertTrue(p.timeout_response.endswith(b"\r\n\r\n408 Request Timeout\n"))


if __name__ == "__main__":
    unittest.main()
