"""uwsgi packets (protocols/uwsgi.py): as nginx sends them, split, with the body behind
them, cut short, oversized, and with lying lengths; refused with uWSGI's words.

The packet tests run twice: with the pure-Python parser and with the C accelerator's
(``_speedups.uwsgi_environ``, skipped where it is not built), and a differential fuzz
feeds both the same mangled packets: same environ, or the same refusal."""

import importlib
import random
import unittest

from helpers import NGINX_VARS, PEER, packet, uwsgi

from emperor_worker.protocols import ProtocolError
from emperor_worker.protocols import uwsgi as uwsgi_module
from emperor_worker.protocols.base import LengthReader
from emperor_worker.protocols.uwsgi import LAYOUTS_CACHED, parse_vars

NGINX = packet(NGINX_VARS)

try:  # imported directly: EMPEROR_PY_SPEEDUPS does not hide it from these tests
    C_ENVIRON = importlib.import_module("emperor_worker._speedups").uwsgi_environ
except ImportError:
    C_ENVIRON = None
NOT_BUILT = "the C accelerator is not built for this Python (scripts/build-python.mjs)"


class Parser:
    """Runs a test class's tests with the parser ``IMPL``: None for the pure-Python one,
    else the C function (the module's ``UWSGI_ENVIRON`` for the duration of each test)."""

    IMPL = None

    def setUp(self) -> None:
        self.saved = uwsgi_module.UWSGI_ENVIRON
        uwsgi_module.UWSGI_ENVIRON = self.IMPL

    def tearDown(self) -> None:
        uwsgi_module.UWSGI_ENVIRON = self.saved


def in_c(cls):
    """The same tests with the C parser (skipped where it is not built)."""
    return unittest.skipIf(C_ENVIRON is None, NOT_BUILT)(type(cls.__name__ + "InC", (cls,), {"IMPL": C_ENVIRON}))


def parse(data: bytes, buffer_size: int = 4096):
    p = uwsgi(buffer_size)
    buf = bytearray(data)
    assert p.head_ready(buf), data
    request = p.read_request(buf, False, PEER)
    assert request is not None
    return request, bytes(buf)


def reason(data: bytes, buffer_size: int = 4096, eof: bool = False) -> str:
    p = uwsgi(buffer_size)
    buf = bytearray(data)
    if not eof:
        assert p.head_ready(buf), "head_ready must let the loop refuse %r" % data
    with unittest.TestCase().assertRaises(ProtocolError) as caught:
        p.read_request(buf, eof, PEER)
    assert caught.exception.response == b"", "nothing is written back on the uwsgi protocol"
    return caught.exception.reason


class Packets(Parser, unittest.TestCase):
    def test_nginx_uwsgi_params_become_the_environ(self):
        (environ, body, interim, keep_alive, context), rest = parse(NGINX)
        want = {k.decode(): v.decode() for k, v in NGINX_VARS}
        want.update({"SCRIPT_NAME": "", "wsgi.url_scheme": "http"})
        self.assertEqual(environ, want)
        self.assertIsNone(body)
        self.assertIsNone(interim)
        self.assertFalse(keep_alive, "one request per connection")
        self.assertIs(context, environ, "the response's status line reads SERVER_PROTOCOL from it")
        self.assertEqual(rest, b"")

    def test_the_body_follows_the_packet(self):
        data = packet(NGINX_VARS + [(b"CONTENT_LENGTH", b"5")]) + b"hello"
        (environ, body, *_), rest = parse(data)
        self.assertEqual(environ["CONTENT_LENGTH"], "5", "a repeated key keeps its last value")
        self.assertIsInstance(body, LengthReader)
        self.assertEqual(rest, b"hello")
        buf = bytearray(rest)
        self.assertEqual((body.read(buf, 100), body.read(buf, 100)), (b"hello", b""))

    def test_defaults_for_an_empty_block(self):
        (environ, body, *_), _ = parse(packet([]))
        self.assertEqual(environ, {
            "SCRIPT_NAME": "", "PATH_INFO": "", "QUERY_STRING": "", "REQUEST_METHOD": "GET",
            "SERVER_PROTOCOL": "HTTP/1.0", "wsgi.url_scheme": "http",
        })
        self.assertIsNone(body)

    def test_https_from_the_front_end(self):
        cases = [
            ([(b"HTTPS", b"on")], "https"), ([(b"HTTPS", b"ON")], "https"), ([(b"HTTPS", b"1")], "https"),
            ([(b"HTTPS", b"off")], "http"), ([(b"REQUEST_SCHEME", b"https")], "https"),
            ([(b"UWSGI_SCHEME", b"HTTPS")], "https"), ([(b"REQUEST_SCHEME", b"http"), (b"UWSGI_SCHEME", b"https")], "http"),
        ]
        for pairs, scheme in cases:
            (environ, *_), _ = parse(packet(pairs))
            self.assertEqual(environ["wsgi.url_scheme"], scheme, pairs)

    def test_content_length_that_is_not_a_length_means_no_body(self):
        for cl in (b"", b"abc", b"-1", b"1" * 19, b" 5", b"\xb2", b"1\xb9"):  # latin-1 ² and ¹: str.isdigit() says yes, int() no
            (_, body, *_), _ = parse(packet([(b"CONTENT_LENGTH", cl)]))
            self.assertIsNone(body, cl)

    def test_bytes_stay_bytes(self):
        (environ, *_), _ = parse(packet([(b"PATH_INFO", b"/caf\xc3\xa9"), (b"HTTP_X_\xff", b"\x00\x80")]))
        self.assertEqual(environ["PATH_INFO"], "/caf\xc3\xa9")
        self.assertEqual(environ["HTTP_X_\xff"], "\x00\x80")

    def test_modifier2_is_ignored(self):
        (environ, *_), _ = parse(packet([(b"PATH_INFO", b"/")], modifier2=9))
        self.assertEqual(environ["PATH_INFO"], "/")


class SplitAndCutShort(Parser, unittest.TestCase):
    def test_split_at_every_byte(self):
        whole, _ = parse(NGINX + b"body")
        p = uwsgi()
        buf = bytearray()
        for i, byte in enumerate(NGINX):
            buf.append(byte)
            if i < len(NGINX) - 1:
                self.assertFalse(p.head_ready(buf), i)
                self.assertIsNone(p.read_request(buf, False, PEER), i)
                self.assertEqual(len(buf), i + 1, "nothing consumed while waiting")
        buf += b"body"
        self.assertTrue(p.head_ready(buf))
        self.assertEqual(p.read_request(buf, False, PEER), whole)
        self.assertEqual(bytes(buf), b"body")

    def test_cut_short_by_the_client_closing(self):
        self.assertEqual(reason(NGINX[:2], eof=True), "truncated header (2 of 4 bytes)")
        self.assertEqual(reason(b"", eof=True), "truncated header (0 of 4 bytes)")
        self.assertEqual(reason(packet([(b"A", b"x" * 95)])[:14], eof=True), "truncated packet (14 of 104 bytes)")


class Refused(Parser, unittest.TestCase):
    def test_only_modifier1_zero_is_served_and_refused_at_its_first_4_bytes(self):
        self.assertTrue(uwsgi().head_ready(bytearray(b"GET ")))
        self.assertEqual(reason(b"GET / HTTP/1.1\r\n"), "unavailable modifier requested: 71 (only 0, WSGI, is served)")
        self.assertEqual(reason(packet([], modifier1=5)), "unavailable modifier requested: 5 (only 0, WSGI, is served)")

    def test_a_block_over_buffer_size_is_refused_at_its_header(self):
        self.assertTrue(uwsgi(4096).head_ready(bytearray(packet([], size=5000))))
        self.assertEqual(reason(packet([], size=5000)), "invalid request block size: 5000 (max 4096, buffer-size)")
        self.assertEqual(reason(packet([], size=100), buffer_size=99), "invalid request block size: 100 (max 99, buffer-size)")
        at_limit = packet([(b"K", b"v" * 95)])  # a 100-byte block
        parse(at_limit, buffer_size=100)

    def test_lying_lengths(self):
        self.assertEqual(reason(packet([], size=4) + b"\x00\x00\x00\x00"), "uwsgi key cannot be null (at byte 4)")
        self.assertEqual(
            reason(packet([], size=6) + bytes([1, 0, 0x41, 200, 0, 0x42])),
            "invalid uwsgi request (current strsize: 200) runs past the end",
        )
        self.assertEqual(
            reason(packet([], size=5) + bytes([9, 0, 0x41, 0, 0])),
            "invalid uwsgi request (current strsize: 9) runs past the end",
        )
        self.assertEqual(
            reason(packet([(b"A", b"b")], size=7) + b"\x01"),
            "invalid uwsgi request (a key length runs past the end at byte 10)",
        )
        self.assertEqual(
            reason(packet([(b"A", b"b")], size=8) + b"\x00\x00"),
            "uwsgi key cannot be null (at byte 10)",
        )

    def test_refusals_log_the_peer(self):
        self.assertEqual(
            uwsgi().refusal("1.2.3.4:5", "truncated header (2 of 4 bytes)", False),
            ("uwsgi packet from 1.2.3.4:5: truncated header (2 of 4 bytes); connection closed", {"peer": "1.2.3.4:5"}),
        )
        self.assertEqual(uwsgi().timeout_response, b"", "a stalled packet is closed without an answer")


PacketsInC = in_c(Packets)
SplitAndCutShortInC = in_c(SplitAndCutShort)
RefusedInC = in_c(Refused)


def outcome(impl, data: bytes, buffer_size: int = 4096, eof: bool = False):
    """What ``read_request`` makes of ``data`` with the parser ``impl``: the request and
    what stays in the buffer, or ("refused", reason)."""
    saved = uwsgi_module.UWSGI_ENVIRON
    uwsgi_module.UWSGI_ENVIRON = impl
    try:
        buf = bytearray(data)
        request = uwsgi(buffer_size).read_request(buf, eof, PEER)
        if request is None:
            return None
        environ, body, interim, keep, context = request
        return environ, type(body).__name__, body.remaining if body is not None else 0, interim, keep, context is environ, bytes(buf)
    except ProtocolError as err:
        return ("refused", err.reason, err.response)
    finally:
        uwsgi_module.UWSGI_ENVIRON = saved


@unittest.skipIf(C_ENVIRON is None, NOT_BUILT)
class SameInPythonAndC(unittest.TestCase):
    """The C parser gives what the Python one gives, byte for byte, refusals included."""

    def same(self, data: bytes, **kw) -> None:
        self.assertEqual(outcome(C_ENVIRON, data, **kw), outcome(None, data, **kw), data)

    def test_mangled_packets(self):
        rng = random.Random(17)
        vars_ = NGINX_VARS + [(b"HTTPS", b"On"), (b"CONTENT_LENGTH", b"12"), (b"UWSGI_SCHEME", b"https")]
        for _ in range(4000):
            pairs = rng.sample(vars_, rng.randint(0, len(vars_)))
            data = bytearray(packet(pairs) + b"x" * rng.randint(0, 20))
            for _ in range(rng.randint(0, 4)):  # flip bytes: lengths, keys, values
                if data:
                    data[rng.randrange(len(data))] = rng.randrange(256)
            data[0] = 0 if rng.random() < 0.9 else data[0]
            if rng.random() < 0.3:
                data = data[: rng.randint(0, len(data))]
            self.same(bytes(data), buffer_size=rng.choice([4096, 64, 200]), eof=rng.random() < 0.5)

    def test_random_blocks(self):
        rng = random.Random(3)
        for _ in range(3000):
            block = bytes(rng.randrange(256) if rng.random() < 0.7 else rng.choice([0, 1, 2]) for _ in range(rng.randint(0, 40)))
            self.same(packet([], size=len(block)) + block)

    def test_scheme_and_defaults(self):
        for pairs in ([], [(b"HTTPS", b"")], [(b"HTTPS", b"oN")], [(b"HTTPS", b"\xd3N")], [(b"REQUEST_SCHEME", b"")],
                      [(b"REQUEST_SCHEME", b""), (b"UWSGI_SCHEME", b"https")], [(b"UWSGI_SCHEME", b"HTTPs")],
                      [(b"REQUEST_METHOD", b"")], [(b"SCRIPT_NAME", b"/x"), (b"SCRIPT_NAME", b"/y")]):
            self.same(packet(pairs))


class Layouts(unittest.TestCase):
    """parse_vars remembers where keys and values lie by block size (a size seen twice):
    a block of that size is taken apart from the layout only when its length fields say
    the same walk, and parsed (or refused) by the loop otherwise."""

    def setUp(self) -> None:
        uwsgi_module._layouts.clear()

    def twice(self, pairs) -> dict:
        block = packet(pairs)[4:]
        first = parse_vars(block)
        self.assertEqual(parse_vars(block), first)
        self.assertIsNotNone(uwsgi_module._layouts.get(len(block)), "the layout is remembered after two")
        return first

    def test_same_layout_new_values(self):
        self.twice([(b"A", b"1"), (b"BB", b"22"), (b"REMOTE_PORT", b"40000")])
        environ = parse_vars(packet([(b"A", b"9"), (b"BB", b"88"), (b"REMOTE_PORT", b"51234")])[4:])
        self.assertEqual(environ, {"A": "9", "BB": "88", "REMOTE_PORT": "51234"})

    def test_same_lengths_other_keys(self):
        self.twice([(b"HTTP_ACCEPT", b"x"), (b"K", b"v")])
        self.assertEqual(parse_vars(packet([(b"HTTP_COOKIE", b"y"), (b"Q", b"w")])[4:]), {"HTTP_COOKIE": "y", "Q": "w"})

    def test_same_size_other_layout(self):
        self.twice([(b"AB", b"1"), (b"C", b"23")])
        other = packet([(b"A", b"12"), (b"CD", b"3")])[4:]
        self.assertEqual(parse_vars(other), {"A": "12", "CD": "3"})
        one = packet([(b"ABCDEF", b"WXYZ")])[4:]  # 14 bytes too, one var
        self.assertEqual(len(one), len(packet([(b"AB", b"1"), (b"C", b"23")])[4:]))
        self.assertEqual(parse_vars(one), {"ABCDEF": "WXYZ"})

    def test_a_bad_block_of_a_known_size_is_still_refused(self):
        self.twice([(b"A", b"b"), (b"C", b"d")])  # 12 bytes
        with self.assertRaises(ProtocolError) as caught:
            parse_vars(bytes([0, 0, 1, 0, 0x41]) + bytes([1, 0, 0x41, 1, 0, 0x42, 0]))
        self.assertEqual(caught.exception.reason, "uwsgi key cannot be null (at byte 4)")
        with self.assertRaises(ProtocolError) as caught:
            parse_vars(bytes([1, 0, 0x41, 1, 0, 0x62, 1, 0, 0x43, 9, 0, 0x64]))
        self.assertEqual(caught.exception.reason, "invalid uwsgi request (current strsize: 9) runs past the end")

    def test_repeated_keys_keep_the_last_value_from_a_layout_too(self):
        self.assertEqual(self.twice([(b"K", b"1"), (b"K", b"2")]), {"K": "2"})

    def test_bounded(self):
        for n in range(3 * LAYOUTS_CACHED):
            parse_vars(packet([(b"K", b"v" * n)])[4:])
        self.assertLessEqual(len(uwsgi_module._layouts), LAYOUTS_CACHED)


class ResponseHeads(unittest.TestCase):
    def test_a_head_built_once_is_the_same_bytes_and_follows_what_changes(self):
        p = uwsgi()
        h11, h10 = {"SERVER_PROTOCOL": "HTTP/1.1"}, {"SERVER_PROTOCOL": "HTTP/1.0"}
        text = [("Content-Type", "text/plain")]
        first = p.response_head("200 OK", text, 13, False, False, h11)
        self.assertEqual(first, (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n", 13, None, b"", False, 2))
        self.assertIs(p.response_head("200 OK", list(text), 13, False, False, h11), first, "built once")
        self.assertTrue(p.response_head("200 OK", text, 13, False, False, h10)[0].startswith(b"HTTP/1.0 200 OK\r\n"))
        self.assertIn(b"Content-Length: 14\r\n", p.response_head("200 OK", text, 14, False, False, h11)[0])
        self.assertEqual(p.response_head("200 OK", text, None, False, False, h11)[1], None)
        self.assertTrue(p.response_head("404 Not Found", text, 13, False, False, h11)[0].startswith(b"HTTP/1.1 404 Not Found\r\n"))
        self.assertIn(b"Set-Cookie: b\r\n", p.response_head("200 OK", text + [("Set-Cookie", "b")], 13, False, False, h11)[0])

    def test_heads_that_vary_per_request_do_not_grow_without_bound(self):
        from emperor_worker.protocols.uwsgi import HEADS_CACHED
        p = uwsgi()
        env = {"SERVER_PROTOCOL": "HTTP/1.1"}
        for i in range(3 * HEADS_CACHED):
            head = p.response_head("200 OK", [("Set-Cookie", "s=%d" % i)], 0, False, False, env)[0]
            self.assertIn(b"Set-Cookie: s=%d\r\n" % i, head)
        self.assertLessEqual(len(p.heads), HEADS_CACHED)


if __name__ == "__main__":
    unittest.main()
