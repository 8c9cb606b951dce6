"""The app's side of one request: the ASGI scope, and ``receive``/``send`` for an HTTP
request (``Cycle``) or a WebSocket session (``WsSession``, RFC 6455 framing in
``websocket.py``). The connection that carries them, the loop and the worker's bookkeeping
are ``server.py``'s.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..protocols import ProtocolError
from ..protocols.base import NO_BODY_STATUS, LengthReader
from . import websocket as ws

if TYPE_CHECKING:
    from .server import AsgiServer, Conn

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}

def status_line(code: int, cache: dict = {}) -> str:  # noqa: B006 - a deliberate memo
    """``"200 OK"`` for 200; an unknown code gets an empty reason."""
    text = cache.get(code)
    if text is None:
        try:
            text = "%d %s" % (code, HTTPStatus(code).phrase)
        except ValueError:
            text = "%d " % code
        if len(cache) < 1024:
            cache[code] = text
    return text


def make_scope(environ: dict, kind: str, state: Optional[dict]) -> dict:
    """The ASGI scope of a request, from the CGI environ a protocol parsed (header names
    come back lower-case, repeated headers as the parser joined them)."""
    headers = []
    for key, value in environ.items():
        if key[:5] == "HTTP_":
            headers.append((key[5:].replace("_", "-").lower().encode("latin-1"), value.encode("latin-1")))
        elif key == "CONTENT_TYPE":
            headers.append((b"content-type", value.encode("latin-1")))
        elif key == "CONTENT_LENGTH":
            headers.append((b"content-length", value.encode("latin-1")))
    path = environ.get("PATH_INFO", "")
    raw_path = path.encode("latin-1")
    if not path.isascii():
        path = raw_path.decode("utf-8", "replace")
    uri = environ.get("REQUEST_URI")
    if uri:
        raw_path = uri.partition("?")[0].encode("latin-1")
    proto = environ.get("SERVER_PROTOCOL", "HTTP/1.0")
    scheme = environ.get("wsgi.url_scheme", "http")
    if kind == "websocket":
        scheme = "wss" if scheme == "https" else "ws"
    scope = {
        "type": kind,
        "asgi": ASGI_VERSION,
        "http_version": proto[5:] if proto[:5] == "HTTP/" else "1.0",
        "method": environ.get("REQUEST_METHOD", "GET"),
        "scheme": scheme,
        "path": path,
        "raw_path": raw_path,
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "root_path": environ.get("SCRIPT_NAME", ""),
        "headers": headers,
        "client": _address(environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT")),
        "server": _address(environ.get("SERVER_NAME"), environ.get("SERVER_PORT")),
    }
    if state is not None:
        scope["state"] = dict(state)
    return scope


def _address(host: Optional[str], port: Optional[str]) -> Optional[tuple]:
    if not host:
        return None
    try:
        return (host, int(port or 0))
    except ValueError:
        return (host, 0)


class Cycle:
    """One HTTP request and its response: the app's ``receive`` and ``send``."""

    __slots__ = ("conn", "server", "reader", "interim", "keep", "context", "is_head", "started", "head_sent", "complete",
                 "status", "headers", "frame", "end", "tx", "hsize", "hcount", "body_done", "harakiri", "done_waiter")

    def __init__(self, conn: "Conn", server: "AsgiServer", reader: Any, interim: Optional[bytes], keep: bool, context: Any, is_head: bool) -> None:
        self.conn = conn
        self.server = server
        self.reader = reader
        self.interim = interim
        self.keep = keep
        self.context = context
        self.is_head = is_head
        self.started = False
        self.head_sent = False
        self.complete = False
        self.status = 0
        self.headers: list = []
        self.frame: Optional[Callable] = None
        self.end: Any = b""
        self.tx = 0
        self.hsize = 0
        self.hcount = 0
        self.body_done = False
        self.harakiri = False
        self.done_waiter: Optional[asyncio.Future] = None

    async def receive(self) -> dict:
        conn = self.conn
        if self.body_done:
            # The body was read: what is left to hear is the client going away, or the response ending.
            if not (self.complete or conn.closed):
                waiter = self.done_waiter = asyncio.get_running_loop().create_future()
                conn.watchers.append(waiter)
                await waiter
            return {"type": "http.disconnect"}
        if self.reader is None:
            self.body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if self.interim is not None:
            if not conn.closed:
                conn.transport.write(self.interim)
            self.interim = None
        reader = self.reader
        buf = conn.buf
        while True:
            try:
                data = reader.read(buf, 1 << 20)
            except ProtocolError as err:
                self.server.log.warn("bad request body from %s: %s; connection closed" % (conn.peer_text(), err.reason))
                conn.abort()
                return {"type": "http.disconnect"}
            if data is None:
                if conn.eof or conn.closed:
                    return {"type": "http.disconnect"}
                await conn.more("body")
                continue
            if not data:
                self.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            more = not (type(reader) is LengthReader and reader.remaining == 0)
            if not more:
                self.body_done = True
            return {"type": "http.request", "body": data, "more_body": more}

    async def send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started:
                raise RuntimeError("ASGI: http.response.body before http.response.start")
            if self.complete:
                raise RuntimeError("ASGI: http.response.body after the response ended")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            conn = self.conn
            if not self.head_sent:
                data = self.send_head(None if more else len(body))
                if body and not self.is_head:
                    data += self.frame(body) if self.frame is not None else body
            elif body and not self.is_head:
                data = self.frame(body) if self.frame is not None else bytes(body)
            else:
                data = b""
            if not more:
                self.complete = True
                if not self.is_head:
                    data += self.end
            if data and not conn.closed:
                conn.transport.write(data)
                self.tx += len(data)
            if not more:
                conn.wake_watchers()
            elif conn.write_paused and not conn.closed:
                await conn.drain()
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("ASGI: http.response.start sent twice")
            self.started = True
            self.status = int(message["status"])
            self.headers = message.get("headers") or []
        else:
            raise RuntimeError("ASGI: unexpected message %r in an http scope" % kind)

    def send_head(self, known_length: Optional[int]) -> bytes:
        """The response head (built by the connection's protocol), remembered for the body's framing."""
        headers = []
        for name, value in self.headers:
            n = name.decode("latin-1") if isinstance(name, bytes) else str(name)
            v = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            if "\r" in v or "\n" in v or "\r" in n or "\n" in n or ":" in n:
                raise RuntimeError("ASGI: bad response header %r" % n[:40])
            headers.append((n, v))
        server = self.server
        keep = self.keep and not server.going_away()
        head, _length, frame, end, keep, count = self.conn.protocol.response_head(
            status_line(self.status), headers, known_length, self.is_head, keep, self.context
        )
        self.keep = keep
        self.frame = frame
        self.end = end if isinstance(end, bytes) else b""
        if self.status < 200 or self.status in NO_BODY_STATUS:
            self.is_head = True  # 1xx, 204, 304: no body, whatever the app sends (RFC 9110 6.4.1)
        self.head_sent = True
        self.hsize = len(head)
        self.hcount = count
        return head

    def send_error(self, status: str, body: bytes) -> None:
        """A plain-text answer in place of the app's (nothing was sent yet); the connection closes after it."""
        self.started = True
        self.status = int(status[:3])
        self.headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        self.keep = False
        data = self.send_head(len(body)) + (b"" if self.is_head else body)
        self.complete = True
        conn = self.conn
        if not conn.closed:
            conn.transport.write(data)
            self.tx += len(data)


class WsSession:
    """One WebSocket session: the app's ``receive`` and ``send`` for a ``websocket`` scope."""

    def __init__(self, conn: "Conn", server: "AsgiServer", key: str, subprotocols: list) -> None:
        self.conn = conn
        self.server = server
        self.key = key
        self.subprotocols = subprotocols
        self.state = "connecting"  # → open → closing (our close frame sent) → closed
        self.connected_given = False
        self.reader = ws.FrameReader(server.ws_max)
        self.close_code = 0
        self.status = 0
        self.tx = 0
        self.hsize = 0
        self.hcount = 0

    async def receive(self) -> dict:
        if not self.connected_given:
            self.connected_given = True
            return {"type": "websocket.connect"}
        conn = self.conn
        while True:
            if self.close_code:
                return {"type": "websocket.disconnect", "code": self.close_code}
            try:
                message = self.reader.next(conn.buf)
            except ws.FrameError as err:
                self.server.log.warn("WebSocket from %s: %s; closed with %d" % (conn.peer_text(), err.reason, err.code))
                self.write(ws.close_frame(err.code))
                self.close_code = err.code
                self.state = "closed"
                conn.close()
                continue
            if message is None:
                if conn.eof or conn.closed:
                    self.close_code = ws.ABNORMAL
                    self.state = "closed"
                    continue
                await conn.more("ws")
                continue
            opcode, payload = message
            if opcode == ws.TEXT:
                return {"type": "websocket.receive", "text": payload}
            if opcode == ws.BINARY:
                return {"type": "websocket.receive", "bytes": payload}
            if opcode == ws.PING:
                if self.state == "open":
                    self.write(ws.frame(ws.PONG, payload))
            elif opcode == ws.CLOSE:
                try:
                    code, _reason = ws.parse_close(payload)
                except ws.FrameError as err:
                    self.server.log.warn("WebSocket from %s: %s; closed with %d" % (conn.peer_text(), err.reason, err.code))
                    code = err.code
                    self.write(ws.close_frame(err.code))
                else:
                    if self.state == "open":
                        self.write(ws.close_frame(code if code != ws.NO_STATUS else ws.NORMAL))
                self.close_code = code
                self.state = "closed"
                conn.close()

    def write(self, data: bytes) -> None:
        conn = self.conn
        if not conn.closed:
            conn.transport.write(data)
            self.tx += len(data)

    async def send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            if self.state != "open":
                if self.state == "connecting":
                    raise RuntimeError("ASGI: websocket.send before websocket.accept")
                return  # closed: the app hears websocket.disconnect on its next receive
            text = message.get("text")
            if text is not None:
                self.write(ws.frame(ws.TEXT, text.encode("utf-8")))
            else:
                self.write(ws.frame(ws.BINARY, bytes(message.get("bytes") or b"")))
            if self.conn.write_paused and not self.conn.closed:
                await self.conn.drain()
        elif kind == "websocket.accept":
            if self.state != "connecting":
                raise RuntimeError("ASGI: websocket.accept in state %s" % self.state)
            lines = ["HTTP/1.1 101 Switching Protocols\r\n", "Upgrade: websocket\r\n", "Connection: Upgrade\r\n",
                     "Sec-WebSocket-Accept: %s\r\n" % ws.accept_key(self.key)]
            sub = message.get("subprotocol")
            if sub:
                lines.append("Sec-WebSocket-Protocol: %s\r\n" % sub)
            for name, value in message.get("headers") or []:
                lines.append("%s: %s\r\n" % (name.decode("latin-1"), value.decode("latin-1")))
            head = ("".join(lines) + "\r\n").encode("latin-1")
            self.hsize = len(head)
            self.hcount = len(lines) - 1
            self.status = 101
            self.write(head)
            self.state = "open"
            self.server.ws_open += 1
            self.server.publish()
        elif kind == "websocket.close":
            if self.state == "connecting":
                # Refused before the handshake ended: a 403 (ASGI spec), and the connection closes.
                body = b"403 Forbidden\n"
                self.status = 403
                head = b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                self.hsize = len(head)
                self.hcount = 3
                self.write(head + body)
                self.state = "closed"
                self.close_code = ws.ABNORMAL
                self.conn.close()
            elif self.state == "open":
                code = int(message.get("code") or ws.NORMAL)
                self.write(ws.close_frame(code if ws.sendable_code(code) else ws.NORMAL, message.get("reason") or ""))
                self.state = "closing"
        else:
            raise RuntimeError("ASGI: unexpected message %r in a websocket scope" % kind)

    def going_away(self) -> None:
        """The worker stops: a close frame with 1001, and the app's next receive says so."""
        if self.state == "open":
            self.write(ws.close_frame(ws.GOING_AWAY))
            self.state = "closing"
        if not self.close_code:
            self.close_code = ws.GOING_AWAY
        self.conn.wake()
