"""The uwsgi binary protocol on ``socket`` / ``uwsgi-socket``: what nginx's ``uwsgi_pass`` speaks.

A request is one packet (uWSGI proto/uwsgi.c, docs Protocol.rst): modifier1 (1 byte, 0
for a WSGI request), the size of the variable block (2 bytes, little-endian), modifier2
(1 byte), then the block: ``u16le key length, key, u16le value length, value``, repeated.
The body (``CONTENT_LENGTH`` bytes) follows. The response is raw HTTP (status line with
the request's ``SERVER_PROTOCOL``, the app's headers as they are), and the connection
closes after it. Packets are checked as uWSGI checks them, with its words; the Node
worker's parser (packages/vassal/src/worker/node/uwsgi-packet.ts) and the C accelerator's
(``_speedups.c``, ``uwsgi_environ``: test/python/test_uwsgi.py runs the tests on both and
compares them on fuzzed packets) do the same. Change them together.
"""

from __future__ import annotations

import struct
from operator import itemgetter
from typing import Any, Optional

from ..speedups import C as SPEEDUPS
from .base import NO_BODY_STATUS, LengthReader, Protocol, ProtocolError, scan_headers

# parse_vars and the rest of read_request's environ in one C call, where the C
# accelerator is built (speedups.py); the same results and the same refusals.
UWSGI_ENVIRON = SPEEDUPS.uwsgi_environ if SPEEDUPS is not None else None

HEADER = struct.Struct("<BHB")
# The variables a request always has (uWSGI's defaults when the front end leaves them out).
DEFAULTED = frozenset(["SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_METHOD", "SERVER_PROTOCOL"])
# The most response heads a protocol instance keeps built (see UwsgiProtocol.response_head).
HEADS_CACHED = 256


def block_error(block: bytes) -> str:
    """Why a variable block does not parse, in the words of uWSGI and of the Node parser.
    Called only once the fast parse failed."""
    end = len(block)
    pos = 0
    while pos < end:
        if pos + 2 > end:
            return "invalid uwsgi request (a key length runs past the end at byte %d)" % (pos + 4)
        klen = block[pos] | block[pos + 1] << 8
        pos += 2
        if klen == 0:
            return "uwsgi key cannot be null (at byte %d)" % (pos + 2)
        if pos + klen + 2 > end:
            return "invalid uwsgi request (current strsize: %d) runs past the end" % klen
        pos += klen
        vlen = block[pos] | block[pos + 1] << 8
        pos += 2
        if pos + vlen > end:
            return "invalid uwsgi request (current strsize: %d) runs past the end" % vlen
        pos += vlen
    return "invalid uwsgi request"


# Variable-block layouts seen, by block size (see parse_vars): None for a size seen once,
# else (the bytes of every length field, getter of those bytes, getter of every key and
# value slice). Bounded: cleared when it holds LAYOUTS_CACHED sizes.
_layouts: dict = {}
LAYOUTS_CACHED = 64


def parse_vars(block: bytes) -> dict:
    """The variable block as a dict (keys and values latin-1, byte for byte; a repeated key
    keeps its last value).

    A front end sends the same variables in the same order with values of the same
    lengths again and again (nginx's uwsgi_params: only the values differ, and mostly not
    in length), so where each key and value lies is remembered by block size once a size
    comes twice. A block of a known size is taken apart in three C calls when every one of
    its length fields holds what the remembered layout says (which makes it the same walk
    through the block), else parsed by the loop.

    :raises ProtocolError: a null key, or a length that runs past the block
    """
    text = block.decode("latin-1")
    size = len(block)
    layout = _layouts.get(size, False)
    if layout:
        if layout[1](block) == layout[0]:
            parts = layout[2](text)
            return dict(zip(parts[::2], parts[1::2]))
    # One decode of the whole block, then slices of it: the Python loop per var is the
    # cost here, so it is as short as it goes (the lengths read as ints from the bytes,
    # each end computed once; a null key is looked for only at the end, by the same walk
    # as block_error).
    environ: dict = {}
    pos = 0
    try:
        while pos < size:
            kend = pos + 2 + (block[pos] | block[pos + 1] << 8)
            vend = kend + 2 + (block[kend] | block[kend + 1] << 8)
            environ[text[pos + 2 : kend]] = text[kend + 2 : vend]
            pos = vend
    except IndexError:
        pos = size + 1
    if pos != size or "" in environ:
        raise ProtocolError(block_error(block))
    if layout is None and environ:
        _layouts[size] = remember_layout(block)
    elif layout is False:
        if len(_layouts) >= LAYOUTS_CACHED:
            _layouts.clear()
        _layouts[size] = None
    return environ


def remember_layout(block: bytes) -> tuple:
    """The layout of a block that parsed (see parse_vars): the values of its length fields'
    bytes, a getter of those bytes, a getter of its key and value slices (two at least,
    so both getters return tuples)."""
    fields = []
    slices = []
    pos = 0
    size = len(block)
    while pos < size:
        kend = pos + 2 + (block[pos] | block[pos + 1] << 8)
        vend = kend + 2 + (block[kend] | block[kend + 1] << 8)
        fields += (pos, pos + 1, kend, kend + 1)
        slices += (slice(pos + 2, kend), slice(kend + 2, vend))
        pos = vend
    get_fields = itemgetter(*fields)
    return get_fields(block), get_fields, itemgetter(*slices)


class UwsgiProtocol(Protocol):
    """``socket`` / ``uwsgi-socket``: one packet per connection, then a raw HTTP response."""

    name = "uwsgi"

    def head_ready(self, buf: bytearray) -> bool:
        if len(buf) < 4:
            return False
        size = buf[1] | buf[2] << 8
        return buf[0] != 0 or len(buf) >= 4 + size or size > self.buffer_size

    def read_request(self, buf: bytearray, eof: bool, peer: Any) -> Optional[tuple]:
        """See ``Protocol.read_request``; the context is the environ (its SERVER_PROTOCOL
        starts the response). At ``eof``, a packet cut short is refused."""
        have = len(buf)
        if have < 4:
            if eof:
                raise ProtocolError("truncated header (%d of 4 bytes)" % have)
            return None
        modifier1, size, _modifier2 = HEADER.unpack_from(buf)
        if modifier1 != 0:
            raise ProtocolError("unavailable modifier requested: %d (only 0, WSGI, is served)" % modifier1)
        if size > self.buffer_size:
            raise ProtocolError("invalid request block size: %d (max %d, buffer-size)" % (size, self.buffer_size))
        end = 4 + size
        if have < end:
            if eof:
                raise ProtocolError("truncated packet (%d of %d bytes)" % (have, end))
            return None
        if UWSGI_ENVIRON is not None:
            # The C path: the variables, the defaults and wsgi.url_scheme in one call.
            environ = UWSGI_ENVIRON(buf, end)
            if environ is None:
                raise ProtocolError(block_error(bytes(buf[4:end])))
            del buf[:end]
            cl = environ.get("CONTENT_LENGTH")
            if not cl:
                return environ, None, None, False, environ
            length = int(cl) if cl.isascii() and cl.isdigit() and len(cl) <= 18 else 0
            return environ, LengthReader(length) if length else None, None, False, environ
        environ = parse_vars(bytes(buf[4:end]))
        del buf[:end]
        if len(environ.keys() & DEFAULTED) != len(DEFAULTED):  # one set operation when nginx sent them all
            environ.setdefault("SCRIPT_NAME", "")
            environ.setdefault("PATH_INFO", "")
            environ.setdefault("QUERY_STRING", "")
            environ.setdefault("REQUEST_METHOD", "GET")
            environ.setdefault("SERVER_PROTOCOL", "HTTP/1.0")
        https = environ.get("HTTPS")
        if not https and environ.get("REQUEST_SCHEME") == "http":
            environ["wsgi.url_scheme"] = "http"  # nginx's plain request, decided without the rest
        else:
            https = (https or "").lower()
            scheme = environ.get("REQUEST_SCHEME", environ.get("UWSGI_SCHEME", "")).lower()
            environ["wsgi.url_scheme"] = "https" if https in ("on", "1") or scheme == "https" else "http"
        cl = environ.get("CONTENT_LENGTH")
        if not cl:
            return environ, None, None, False, environ
        length = int(cl) if cl.isascii() and cl.isdigit() and len(cl) <= 18 else 0
        return environ, LengthReader(length) if length else None, None, False, environ

    def __init__(self, buffer_size: int, server: tuple, date: Any) -> None:
        super().__init__(buffer_size, server, date)
        # Response heads already built, by (SERVER_PROTOCOL, status, headers as a tuple,
        # known length): an app answers with the same few heads again and again, and this
        # protocol adds nothing that changes per request (no Date, no keep-alive).
        self.heads: dict = {}

    def response_head(
        self, status: str, headers: list, known_length: Optional[int], is_head: bool, keep: bool, environ: Any
    ) -> tuple:
        key = (environ["SERVER_PROTOCOL"], status, tuple(headers), known_length)
        try:
            return self.heads[key]
        except KeyError:
            pass
        answer = self._response_head(status, headers, known_length, environ)
        heads = self.heads
        if len(heads) >= HEADS_CACHED:
            heads.clear()  # heads that vary per request (cookies, ETags): start again rather than grow
        heads[key] = answer
        return answer

    def _response_head(self, status: str, headers: list, known_length: Optional[int], environ: Any) -> tuple:
        code = int(status[:3])
        lines, length, _close, _has_date = scan_headers(headers, False)
        if length is None and known_length is not None and not (code < 200 or code in NO_BODY_STATUS):
            length = known_length
            lines.append("Content-Length: %d\r\n" % length)
        # Read now, not at the request's start: what the app left in its environ, as before.
        head = ("%s %s\r\n" % (environ["SERVER_PROTOCOL"] or "HTTP/1.0", status) + "".join(lines) + "\r\n").encode("latin-1")
        return head, length, None, b"", False, len(lines)

    def refusal(self, peer: str, reason: str, timed_out: bool) -> tuple:
        return "uwsgi packet from %s: %s; connection closed" % (peer, reason), {"peer": peer}
