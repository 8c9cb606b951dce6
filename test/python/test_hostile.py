"""Hostile input for both parsers: random bytes and mutated, truncated, oversized and lying
requests, fed in random pieces. Whatever comes, a parser answers "need more", a request,
or a ProtocolError with a reason; it never raises anything else, never waits once it
said a head is ready, and never takes bytes it was not given. Seeded, so a failure
reproduces; the end-to-end fuzzers (test/reliability/fuzz-*.test.ts) do the same
against running workers."""

import random
import unittest

from helpers import NGINX_VARS, PEER, http, packet, uwsgi

from emperor_worker.protocols import ProtocolError

SEED = 1616
ROUNDS = 1500

HTTP_SEEDS = [
    b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /a?b=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world",
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nT: 1\r\n\r\n",
    b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
]
UWSGI_SEEDS = [
    packet(NGINX_VARS),
    packet(NGINX_VARS + [(b"CONTENT_LENGTH", b"5")]) + b"hello",
    packet([]),
    packet([(b"HTTPS", b"on"), (b"PATH_INFO", b"/\xff\x00")]),
]
NASTY = [b"\r\n", b"\r\n\r\n", b"\r", b"\n", b"\x00", b":", b" ", b";", b"\xff", b"%", b"0", b"ffffffffffffffff", b"-1", b"99999999999999999999", b"_"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        at = rng.randint(0, len(data))
        if op == 0 and data:  # flip a byte
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 1:  # delete a run
            del data[at:at + rng.randint(1, 8)]
        elif op == 2:  # repeat a run
            data[at:at] = data[at:at + rng.randint(1, 40)] * rng.randint(1, 200)
        elif op == 3:  # insert something that matters to a parser
            data[at:at] = rng.choice(NASTY)
        elif op == 4:  # cut it short
            del data[at:]
        elif op == 5 and len(data) >= 4:  # lie in a little-endian length (uwsgi) or any two bytes
            i = rng.randrange(len(data) - 1)
            data[i:i + 2] = rng.randrange(65536).to_bytes(2, "little")
        else:  # random bytes
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return bytes(data)


class Hostile(unittest.TestCase):
    def drive(self, protocol, data: bytes, rng: random.Random) -> None:
        """Feeds ``data`` in random pieces as the loop would; checks the parser's promises."""
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 6)))) if len(data) > 1 else []
        pieces = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
        buf = bytearray()
        given = 0
        body = None
        last = False  # the request served closes the connection after its body
        for piece in pieces:
            buf += piece
            given += len(piece)
            while True:
                if body is not None:
                    try:
                        got = body.read(buf, rng.choice([1, 7, 4096]))
                    except ProtocolError as err:
                        self.assertIsInstance(err.reason, str)
                        return  # the connection would close
                    if got is None:
                        break  # the rest of the body is on its way
                    self.assertIsInstance(got, bytes)
                    if not got:
                        body = None
                        if last:
                            return
                    continue
                before = bytes(buf)
                ready = protocol.head_ready(buf)
                self.assertTrue(before.endswith(bytes(buf)), "head_ready only drops leading bytes")
                if not ready:
                    before = bytes(buf)
                    self.assertIsNone(protocol.read_request(buf, False, PEER), "not ready means no request yet")
                    self.assertEqual(bytes(buf), before, "and nothing is taken while waiting")
                    break
                try:
                    request = protocol.read_request(buf, False, PEER)
                except ProtocolError as err:
                    self.assertIsInstance(err.reason, str)
                    self.assertIsInstance(err.response, bytes)
                    return  # refused: the connection closes
                self.assertIsNotNone(request, "ready means a request or a refusal, never a wait")
                environ, body, interim, keep_alive, _ = request
                self.assertTrue(all(type(k) is str and type(v) is str for k, v in environ.items()), environ)
                self.assertLessEqual(len(buf), given)
                if not keep_alive:
                    if body is None:
                        return
                    last = True
        try:
            protocol.read_request(buf, True, PEER)  # the client closes
        except ProtocolError:
            pass

    def test_http_heads_and_bodies(self):
        rng = random.Random(SEED)
        for i in range(ROUNDS):
            data = mutate(rng, rng.choice(HTTP_SEEDS)) if i % 10 else bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
            with self.subTest(i=i, data=data[:200]):
                self.drive(http(buffer_size=rng.choice([32, 100, 4096])), data, rng)

    def test_uwsgi_packets(self):
        rng = random.Random(SEED + 1)
        for i in range(ROUNDS):
            data = mutate(rng, rng.choice(UWSGI_SEEDS)) if i % 10 else bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
            with self.subTest(i=i, data=data[:200]):
                self.drive(uwsgi(buffer_size=rng.choice([16, 200, 4096])), data, rng)

    def test_oversized_everything(self):
        big = b"x" * 70000
        for p, data in [
            (http(4096), b"GET /" + big + b" HTTP/1.1\r\n\r\n"),
            (http(4096), b"GET / HTTP/1.1\r\nHost: h\r\nX: " + big + b"\r\n\r\n"),
            (http(4096), b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 5000 + b"\r\n"),
            (uwsgi(4096), packet([(b"K" * 30000, b"v" * 30000), (b"A", b"b")])),
        ]:
            buf = bytearray(data)
            self.assertTrue(p.head_ready(buf))
            with self.assertRaises(ProtocolError):
                p.read_request(buf, False, PEER)


if __name__ == "__main__":
    unittest.main()
