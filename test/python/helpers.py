"""What the worker's unit tests share: the package on sys.path, protocols with a fixed
clock, uwsgi packets, and ways to feed bytes in pieces."""

import os
import struct
import sys

PYTHON_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "packages", "vassal", "python"))
PACKAGE_DIR = os.path.join(PYTHON_DIR, "emperor_worker")
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)

from emperor_worker.protocols import make_protocol  # noqa: E402

DATE = "Thu, 01 Jan 2026 00:00:00 GMT"
SERVER = ("127.0.0.1", "8000", "")
PEER = ("10.0.0.7", 51234)


def fixed_date() -> str:
    return DATE


def http(buffer_size: int = 4096, server: tuple = SERVER):
    return make_protocol("http", buffer_size, server, fixed_date)


def uwsgi(buffer_size: int = 4096):
    return make_protocol("uwsgi", buffer_size, SERVER, fixed_date)


def packet(pairs, modifier1: int = 0, modifier2: int = 0, size=None) -> bytes:
    """A uwsgi packet of ``(key, value)`` byte strings, as nginx lays it out; ``size``
    overrides the header's pktsize (to lie)."""
    block = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v for k, v in pairs)
    return struct.pack("<BHB", modifier1, len(block) if size is None else size, modifier2) + block


#: What nginx's stock uwsgi_params send for GET /a?b=1.
NGINX_VARS = [
    (b"QUERY_STRING", b"b=1"), (b"REQUEST_METHOD", b"GET"), (b"CONTENT_TYPE", b""), (b"CONTENT_LENGTH", b""),
    (b"REQUEST_URI", b"/a?b=1"), (b"PATH_INFO", b"/a"), (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"), (b"REQUEST_SCHEME", b"http"), (b"REMOTE_ADDR", b"10.1.2.3"),
    (b"REMOTE_PORT", b"40000"), (b"SERVER_PORT", b"80"), (b"SERVER_NAME", b"example.test"), (b"HTTP_HOST", b"example.test"),
]


def pieces(data: bytes, size: int):
    """``data`` cut into pieces of ``size`` bytes (the last may be shorter)."""
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def read_body(reader, chunks, want: int = 1 << 20):
    """Feeds ``chunks`` into a buffer one at a time, as reads from a socket would, and
    decodes with ``reader`` until the body ends. Returns (body, bytes left in the buffer);
    raises AssertionError when the chunks end first."""
    buf = bytearray()
    out = bytearray()
    chunks = list(chunks)
    while True:
        data = reader.read(buf, want)
        if data is None:
            if not chunks:
                raise AssertionError("the body did not end: %r left, %r decoded" % (bytes(buf), bytes(out)))
            buf += chunks.pop(0)
        elif data:
            out += data
        else:
            for rest in chunks:
                buf += rest
            return bytes(out), bytes(buf)
