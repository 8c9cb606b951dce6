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


def fastcgi(buffer_size: int = 4096, max_conns: int = 1024, max_reqs: int = 8):
    return make_protocol("fastcgi", buffer_size, SERVER, fixed_date, {"fastcgi": {"maxConns": max_conns, "maxReqs": max_reqs}})


def fcgi_record(rtype: int, request_id: int, content: bytes = b"", padding: int = 0) -> bytes:
    """One FastCGI record, with ``padding`` zero bytes after the content."""
    return struct.pack(">BBHHBx", 1, rtype, request_id, len(content), padding) + content + b"\0" * padding


def fcgi_pairs(items) -> bytes:
    """FastCGI name-value pairs of ``(name, value)`` byte strings (1-byte lengths below 128, else 4)."""
    out = b""
    for name, value in items:
        for b in (name, value):
            out += bytes([len(b)]) if len(b) < 128 else struct.pack(">I", len(b) | 0x80000000)
        out += name + value
    return out


def fcgi_request(items, body: bytes = b"", request_id: int = 1, role: int = 1, keep: bool = False,
                 stdin_record: int = 65535, padding: int = 0) -> bytes:
    """A whole FastCGI request as a front end sends it: BEGIN_REQUEST, PARAMS, the empty
    PARAMS, STDIN records of ``stdin_record`` bytes, the empty STDIN."""
    out = fcgi_record(1, request_id, struct.pack(">HB5x", role, 1 if keep else 0), padding)
    block = fcgi_pairs(items)
    for i in range(0, len(block), 65535):
        out += fcgi_record(4, request_id, block[i:i + 65535], padding)
    out += fcgi_record(4, request_id, b"", padding)
    for i in range(0, len(body), stdin_record):
        out += fcgi_record(5, request_id, body[i:i + stdin_record], padding)
    return out + fcgi_record(5, request_id, b"", padding)


def fcgi_records(data: bytes) -> list:
    """``(type, request id, content)`` of each whole record in ``data`` (what the worker sent)."""
    out = []
    pos = 0
    while len(data) - pos >= 8:
        _v, rtype, rid, length, padding = struct.unpack_from(">BBHHBx", data, pos)
        out.append((rtype, rid, data[pos + 8:pos + 8 + length]))
        pos += 8 + length + padding
    assert pos == len(data), "a partial record at the end: %r" % data[pos:]
    return out


#: What nginx's stock fastcgi_params send for GET /a?b=1.
NGINX_PARAMS = [
    (b"QUERY_STRING", b"b=1"), (b"REQUEST_METHOD", b"GET"), (b"CONTENT_TYPE", b""), (b"CONTENT_LENGTH", b""),
    (b"SCRIPT_NAME", b"/a"), (b"REQUEST_URI", b"/a?b=1"), (b"DOCUMENT_URI", b"/a"), (b"DOCUMENT_ROOT", b"/srv"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"), (b"REQUEST_SCHEME", b"http"), (b"GATEWAY_INTERFACE", b"CGI/1.1"),
    (b"REMOTE_ADDR", b"10.1.2.3"), (b"REMOTE_PORT", b"40000"), (b"SERVER_ADDR", b"127.0.0.1"), (b"SERVER_PORT", b"80"),
    (b"SERVER_NAME", b"example.test"), (b"HTTP_HOST", b"example.test"),
]


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
