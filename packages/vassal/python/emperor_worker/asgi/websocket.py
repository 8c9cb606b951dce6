"""WebSocket framing (RFC 6455), sans-IO: the opening handshake's answer, frames read from
the front of a buffer, frames built for the server to send, close codes checked.

The ASGI side (``server.py``) reads a connection into a buffer and asks ``FrameReader``
for whole messages; nothing here touches a socket or a clock. What is refused is what the
RFC says a server must refuse (unmasked client frames, reserved bits and opcodes, control
frames fragmented or longer than 125 bytes, text that is not UTF-8, close codes that may
not be sent), each with the close code it calls for.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Optional

#: RFC 6455 1.3: the GUID appended to the client's key.
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Close codes (RFC 6455 7.4.1).
NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
INVALID_DATA = 1007
TOO_BIG = 1009
INTERNAL_ERROR = 1011
#: Reported to the app, never sent: the connection closed without a close frame.
ABNORMAL = 1006
#: Reported to the app, never sent: a close frame without a code.
NO_STATUS = 1005


class FrameError(Exception):
    """Input the RFC says to refuse: ``code`` is the close code to send, ``reason`` the log's words."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for the client's ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("latin-1") + GUID).digest()).decode("ascii")


def valid_key(key: str) -> bool:
    """A ``Sec-WebSocket-Key``: 16 bytes, base64 (RFC 6455 4.1)."""
    try:
        return len(base64.b64decode(key.encode("latin-1"), validate=True)) == 16
    except (ValueError, UnicodeEncodeError):
        return False


def sendable_code(code: int) -> bool:
    """A close code an endpoint may put in a close frame (RFC 6455 7.4; IANA registry)."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or 3000 <= code <= 4999


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One unmasked frame, as a server sends it."""
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        return struct.pack("!BB", first, n) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame with ``code`` and ``reason`` (cut to fit the 125-byte control payload)."""
    data = reason.encode("utf-8")[:123]
    while data:
        try:
            data.decode("utf-8")
            break
        except UnicodeDecodeError:
            data = data[:-1]
    return frame(CLOSE, struct.pack("!H", code) + data)


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XORs ``payload`` with the 4-byte ``mask`` (one big-integer XOR, not a Python loop per byte)."""
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def parse_close(payload: bytes) -> tuple:
    """``(code, reason)`` of a client's close frame payload.

    :raises FrameError: 1002 for a 1-byte payload or a code that may not be sent, 1007 for a reason not UTF-8
    """
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        raise FrameError(PROTOCOL_ERROR, "close frame with a 1-byte payload")
    code = struct.unpack("!H", payload[:2])[0]
    if not sendable_code(code):
        raise FrameError(PROTOCOL_ERROR, "close code %d may not be sent" % code)
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(INVALID_DATA, "close reason is not UTF-8")
    return code, reason


class FrameReader:
    """Client frames from the front of a buffer, put together into messages.

    ``next(buf)`` returns ``(opcode, payload)`` for each whole message (TEXT as str,
    BINARY as bytes) or control frame (CLOSE, PING, PONG as bytes), None when ``buf``
    holds no whole frame yet. ``max_size`` bounds a message (its fragments together), in
    bytes: a frame header announcing more is refused before its payload comes.
    """

    __slots__ = ("max_size", "parts", "size", "kind")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.parts: list = []  # the fragments of a message in progress
        self.size = 0
        self.kind = 0  # TEXT or BINARY while a fragmented message is in progress

    def next(self, buf: bytearray) -> Optional[tuple]:
        """See the class doc.

        :raises FrameError: with the close code to answer
        """
        while True:
            have = len(buf)
            if have < 2:
                return None
            b0, b1 = buf[0], buf[1]
            fin = b0 & 0x80
            if b0 & 0x70:
                raise FrameError(PROTOCOL_ERROR, "reserved bits set (no extension was agreed)")
            opcode = b0 & 0x0F
            if not b1 & 0x80:
                raise FrameError(PROTOCOL_ERROR, "unmasked frame from the client")
            n = b1 & 0x7F
            at = 2
            if n == 126:
                if have < 4:
                    return None
                n = struct.unpack_from("!H", buf, 2)[0]
                at = 4
            elif n == 127:
                if have < 10:
                    return None
                n = struct.unpack_from("!Q", buf, 2)[0]
                if n >> 63:
                    raise FrameError(PROTOCOL_ERROR, "frame length with the top bit set")
                at = 10
            control = opcode >= 0x8
            if control:
                if opcode not in (CLOSE, PING, PONG):
                    raise FrameError(PROTOCOL_ERROR, "reserved opcode 0x%x" % opcode)
                if not fin:
                    raise FrameError(PROTOCOL_ERROR, "fragmented control frame")
                if n > 125:
                    raise FrameError(PROTOCOL_ERROR, "control frame payload of %d bytes (at most 125)" % n)
            elif opcode not in (CONT, TEXT, BINARY):
                raise FrameError(PROTOCOL_ERROR, "reserved opcode 0x%x" % opcode)
            elif opcode == CONT and not self.kind:
                raise FrameError(PROTOCOL_ERROR, "continuation frame with no message in progress")
            elif opcode != CONT and self.kind:
                raise FrameError(PROTOCOL_ERROR, "new data frame before the fragmented message ended")
            if not control and self.size + n > self.max_size:
                raise FrameError(TOO_BIG, "message of more than %d bytes (websockets-max-size)" % self.max_size)
            end = at + 4 + n
            if have < end:
                return None
            mask = bytes(buf[at : at + 4])
            payload = unmask(bytes(buf[at + 4 : end]), mask)
            del buf[:end]
            if control:
                return opcode, payload
            if opcode != CONT:
                self.kind = opcode
            if not fin:
                self.parts.append(payload)
                self.size += n
                continue
            kind = self.kind
            if self.parts:
                self.parts.append(payload)
                payload = b"".join(self.parts)
                self.parts = []
            self.size = 0
            self.kind = 0
            if kind == TEXT:
                try:
                    return TEXT, payload.decode("utf-8")
                except UnicodeDecodeError:
                    raise FrameError(INVALID_DATA, "text message is not UTF-8")
            return BINARY, payload
