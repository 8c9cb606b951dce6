"""The ASGI worker's sans-IO parts: WebSocket framing (RFC 6455), the scope built from a
parsed request, which apps are ASGI, and the lifespan protocol."""

import asyncio
import os
import struct
import unittest

from helpers import PEER, http  # noqa: F401 - puts the package on sys.path

from emperor_worker.asgi import is_asgi, wanted
from emperor_worker.asgi import websocket as ws
from emperor_worker.asgi.lifespan import Lifespan
from emperor_worker.asgi.cycle import make_scope, status_line


def client_frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes = b"\x01\x02\x03\x04", masked: bool = True, rsv: int = 0) -> bytes:
    """A frame as a client sends it (masked unless told not to)."""
    n = len(payload)
    first = (0x80 if fin else 0) | rsv | opcode
    bit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", first, bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, bit | 127, n)
    if not masked:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Handshake(unittest.TestCase):
    def test_accept_key_is_the_rfc_example(self):
        self.assertEqual(ws.accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")

    def test_key_must_be_16_bytes_of_base64(self):
        self.assertTrue(ws.valid_key("dGhlIHNhbXBsZSBub25jZQ=="))
        self.assertFalse(ws.valid_key("c2hvcnQ="))
        self.assertFalse(ws.valid_key("not base64!!"))
        self.assertFalse(ws.valid_key(""))


class Frames(unittest.TestCase):
    def test_text_binary_and_every_length_encoding(self):
        for n in (0, 1, 125, 126, 65535, 65536, 70000):
            r = ws.FrameReader(1 << 20)
            buf = bytearray(client_frame(ws.BINARY, os.urandom(n)))
            opcode, payload = r.next(buf)
            self.assertEqual((opcode, len(payload)), (ws.BINARY, n))
            self.assertEqual(buf, b"")
        r = ws.FrameReader(100)
        self.assertEqual(r.next(bytearray(client_frame(ws.TEXT, "héllo".encode()))), (ws.TEXT, "héllo"))

    def test_unmask_is_the_xor(self):
        data = os.urandom(1001)
        mask = b"\xaa\x55\x0f\xf0"
        self.assertEqual(ws.unmask(ws.unmask(data, mask), mask), data)
        self.assertEqual(ws.unmask(b"\x00\x00\x00\x00\x00", mask), mask + mask[:1])

    def test_frames_arriving_a_byte_at_a_time(self):
        data = client_frame(ws.TEXT, b"x" * 300) + client_frame(ws.PING, b"p")
        r = ws.FrameReader(1000)
        buf = bytearray()
        got = []
        for b in data:
            buf.append(b)
            m = r.next(buf)
            if m is not None:
                got.append(m)
        self.assertEqual(got, [(ws.TEXT, "x" * 300), (ws.PING, b"p")])

    def test_fragments_with_a_control_frame_between(self):
        buf = bytearray(client_frame(ws.TEXT, b"ab", fin=False) + client_frame(ws.PING, b"!") +
                        client_frame(ws.CONT, b"cd", fin=False) + client_frame(ws.CONT, b"e"))
        r = ws.FrameReader(100)
        self.assertEqual(r.next(buf), (ws.PING, b"!"))
        self.assertEqual(r.next(buf), (ws.TEXT, "abcde"))
        self.assertIsNone(r.next(buf))

    def test_utf8_split_across_fragments(self):
        text = "é".encode()
        buf = bytearray(client_frame(ws.TEXT, text[:1], fin=False) + client_frame(ws.CONT, text[1:]))
        self.assertEqual(ws.FrameReader(100).next(buf), (ws.TEXT, "é"))

    def refused(self, data: bytes, code: int, max_size: int = 100) -> str:
        with self.assertRaises(ws.FrameError) as cm:
            r = ws.FrameReader(max_size)
            buf = bytearray(data)
            while r.next(buf) is not None:
                pass
        self.assertEqual(cm.exception.code, code)
        return cm.exception.reason

    def test_what_the_rfc_refuses(self):
        self.assertIn("unmasked", self.refused(client_frame(ws.TEXT, b"a", masked=False), ws.PROTOCOL_ERROR))
        self.assertIn("reserved bits", self.refused(client_frame(ws.TEXT, b"a", rsv=0x40), ws.PROTOCOL_ERROR))
        self.assertIn("reserved opcode", self.refused(client_frame(0x3, b"a"), ws.PROTOCOL_ERROR))
        self.assertIn("reserved opcode", self.refused(client_frame(0xB, b"a"), ws.PROTOCOL_ERROR))
        self.assertIn("fragmented control", self.refused(client_frame(ws.PING, b"a", fin=False), ws.PROTOCOL_ERROR))
        self.assertIn("at most 125", self.refused(client_frame(ws.PING, b"a" * 126), ws.PROTOCOL_ERROR, 1000))
        self.assertIn("continuation", self.refused(client_frame(ws.CONT, b"a"), ws.PROTOCOL_ERROR))
        self.assertIn("before the fragmented", self.refused(client_frame(ws.TEXT, b"a", fin=False) + client_frame(ws.TEXT, b"b"), ws.PROTOCOL_ERROR))
        self.assertIn("not UTF-8", self.refused(client_frame(ws.TEXT, b"\xff\xfe"), ws.INVALID_DATA))

    def test_size_limit_counts_fragments_and_needs_no_payload(self):
        self.assertIn("websockets-max-size", self.refused(client_frame(ws.BINARY, b"a" * 101), ws.TOO_BIG))
        self.refused(client_frame(ws.BINARY, b"a" * 60, fin=False) + client_frame(ws.CONT, b"a" * 60), ws.TOO_BIG)
        # A header announcing 2^40 bytes is refused before any of them come.
        head = struct.pack("!BBQ", 0x82, 0x80 | 127, 1 << 40) + b"\x00\x00\x00\x00"
        self.refused(head, ws.TOO_BIG)
        self.refused(struct.pack("!BBQ", 0x82, 0x80 | 127, 1 << 63) + b"\x00" * 4, ws.PROTOCOL_ERROR)

    def test_server_frames(self):
        self.assertEqual(ws.frame(ws.TEXT, b"hi"), b"\x81\x02hi")
        self.assertEqual(ws.frame(ws.BINARY, b"x" * 200)[:4], b"\x82\x7e\x00\xc8")
        self.assertEqual(ws.frame(ws.BINARY, b"x" * 70000)[:10], b"\x82\x7f" + struct.pack("!Q", 70000))
        self.assertEqual(ws.close_frame(1001), b"\x88\x02\x03\xe9")
        self.assertEqual(len(ws.close_frame(1000, "é" * 100)), 2 + 2 + 122)  # cut at a character, within 125

    def test_close_codes(self):
        self.assertEqual(ws.parse_close(b""), (ws.NO_STATUS, ""))
        self.assertEqual(ws.parse_close(struct.pack("!H", 1000) + b"bye"), (1000, "bye"))
        self.assertEqual(ws.parse_close(struct.pack("!H", 4000)), (4000, ""))
        for bad in (999, 1004, 1005, 1006, 1015, 2999, 5000):
            with self.assertRaises(ws.FrameError):
                ws.parse_close(struct.pack("!H", bad))
        with self.assertRaises(ws.FrameError) as cm:
            ws.parse_close(b"\x03")
        self.assertEqual(cm.exception.code, ws.PROTOCOL_ERROR)
        with self.assertRaises(ws.FrameError) as cm:
            ws.parse_close(struct.pack("!H", 1000) + b"\xff")
        self.assertEqual(cm.exception.code, ws.INVALID_DATA)


class Scope(unittest.TestCase):
    def test_http_scope_from_a_parsed_request(self):
        p = http()
        buf = bytearray(b"GET /caf%C3%A9/x?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nX-A: 1\r\nX-A: 2\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n")
        environ = p.read_request(buf, False, PEER)[0]
        scope = make_scope(environ, "http", {"db": 1})
        self.assertEqual(scope["type"], "http")
        self.assertEqual(scope["asgi"]["version"], "3.0")
        self.assertEqual(scope["http_version"], "1.1")
        self.assertEqual(scope["method"], "GET")
        self.assertEqual(scope["scheme"], "http")
        self.assertEqual(scope["path"], "/café/x")
        self.assertEqual(scope["raw_path"], b"/caf%C3%A9/x")
        self.assertEqual(scope["query_string"], b"q=1")
        self.assertEqual(scope["root_path"], "")
        self.assertEqual(scope["client"], PEER)
        self.assertEqual(scope["server"], ("example.com", 8080))
        self.assertEqual(scope["state"], {"db": 1})
        headers = dict(scope["headers"])
        self.assertEqual(headers[b"host"], b"example.com:8080")
        self.assertEqual(headers[b"x-a"], b"1, 2")
        self.assertEqual(headers[b"content-type"], b"text/plain")
        self.assertEqual(headers[b"content-length"], b"0")

    def test_websocket_scheme_and_no_state_without_lifespan(self):
        environ = http().read_request(bytearray(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"), False, PEER)[0]
        scope = make_scope(environ, "websocket", None)
        self.assertEqual(scope["scheme"], "ws")
        self.assertNotIn("state", scope)

    def test_status_lines(self):
        self.assertEqual(status_line(200), "200 OK")
        self.assertEqual(status_line(504), "504 Gateway Timeout")
        self.assertEqual(status_line(599), "599 ")


async def asgi_fn(scope, receive, send):
    pass


class AsgiClass:
    async def __call__(self, scope, receive, send):
        pass


def wsgi_fn(environ, start_response):
    return []


class WsgiClass:
    def __call__(self, environ, start_response):
        return []


class Detection(unittest.TestCase):
    def test_async_callables_are_asgi(self):
        self.assertTrue(is_asgi(asgi_fn))
        self.assertTrue(is_asgi(AsgiClass()))
        self.assertFalse(is_asgi(wsgi_fn))
        self.assertFalse(is_asgi(WsgiClass()))
        self.assertFalse(is_asgi(AsgiClass))  # the class itself is a plain callable

    def test_wrapped_callables(self):
        import functools

        self.assertTrue(is_asgi(functools.partial(asgi_fn)))
        self.assertTrue(is_asgi(AsgiClass().__call__))
        self.assertFalse(is_asgi(functools.partial(wsgi_fn)))
        self.assertFalse(is_asgi(WsgiClass().__call__))
        self.assertFalse(is_asgi(print))  # a builtin: no code object

    def test_deciding_does_not_import_asyncio(self):
        # A WSGI worker decides after the fork: asyncio must not load there.
        import subprocess
        import sys

        code = (
            "import sys\n"
            "from emperor_worker.asgi import wanted\n"
            "def app(environ, start_response): return []\n"
            "assert not wanted({'app': {}}, app)\n"
            "print('asyncio' in sys.modules, 'inspect' in sys.modules)\n"
        )
        here = os.path.dirname(os.path.abspath(__file__))
        root = os.path.join(here, "..", "..", "packages", "vassal", "python")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=root))
        self.assertEqual(out.stdout.split(), ["False", "False"])

    def test_the_asgi_option_forces_it(self):
        self.assertTrue(wanted({"app": {"asgi": True}}, wsgi_fn))
        self.assertFalse(wanted({"app": {"asgi": False}}, wsgi_fn))
        self.assertTrue(wanted({"app": {}}, asgi_fn))


class LifespanProtocol(unittest.TestCase):
    def run_lifespan(self, app):
        async def go():
            lifespan = Lifespan(app, {})
            started = await lifespan.startup()
            stopped = await lifespan.shutdown() if started is None else None
            return lifespan, started, stopped

        return asyncio.run(go())

    def test_startup_and_shutdown_complete(self):
        seen = []

        async def app(scope, receive, send):
            assert scope["type"] == "lifespan"
            while True:
                m = await receive()
                seen.append(m["type"])
                if m["type"] == "lifespan.startup":
                    scope["state"]["ready"] = True
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return

        lifespan, started, stopped = self.run_lifespan(app)
        self.assertEqual((started, stopped), (None, None))
        self.assertEqual(seen, ["lifespan.startup", "lifespan.shutdown"])
        self.assertEqual(lifespan.state, {"ready": True})
        self.assertTrue(lifespan.supported)

    def test_startup_failed_is_reported(self):
        async def app(scope, receive, send):
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no database"})

        self.assertEqual(self.run_lifespan(app)[1], "no database")

    def test_raising_after_startup_was_asked_is_a_failure(self):
        async def app(scope, receive, send):
            await receive()
            raise RuntimeError("boom")

        started = self.run_lifespan(app)[1]
        self.assertIn("RuntimeError: boom", started)

    def test_an_app_that_returns_at_once_does_not_speak_lifespan(self):
        async def app(scope, receive, send):
            if scope["type"] != "http":
                return

        lifespan, started, _ = self.run_lifespan(app)
        self.assertIsNone(started)
        self.assertFalse(lifespan.supported)

    def test_an_app_that_never_receives_does_not_speak_lifespan(self):
        async def app(scope, receive, send):
            assert scope["type"] == "http"

        lifespan, started, _ = self.run_lifespan(app)
        self.assertIsNone(started)
        self.assertFalse(lifespan.supported)


if __name__ == "__main__":
    unittest.main()
