"""Response heads and framing as each protocol decides them (Protocol.response_head)."""

import unittest

from helpers import DATE, http, uwsgi

from emperor_worker.protocols.http import LAST_CHUNK, chunk

TEXT = [("Content-Type", "text/plain")]


def head(protocol, status="200 OK", headers=TEXT, known=None, is_head=False, keep=True, context=True):
    return protocol.response_head(status, list(headers), known, is_head, keep, context)


class HttpResponses(unittest.TestCase):
    def test_a_length_from_the_app(self):
        data, length, frame, end, keep, count = head(http(), headers=TEXT + [("Content-Length", " 13 ")])
        self.assertEqual(
            data,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length:  13 \r\nDate: " + DATE.encode() + b"\r\n\r\n",
        )
        self.assertEqual((length, frame, end, keep, count), (13, None, b"", True, 3))

    def test_a_length_the_server_knows(self):
        data, length, frame, _, keep, count = head(http(), known=5)
        self.assertIn(b"\r\nContent-Length: 5\r\n", data)
        self.assertEqual((length, frame, keep, count), (5, None, True, 3))

    def test_unknown_length_is_chunked_on_http11(self):
        data, length, frame, end, keep, _ = head(http())
        self.assertIn(b"\r\nTransfer-Encoding: chunked\r\n", data)
        self.assertEqual((length, frame, end, keep), (None, chunk, LAST_CHUNK, True))
        self.assertEqual(chunk(b"hello world"), b"b\r\nhello world\r\n")
        self.assertEqual(LAST_CHUNK, b"0\r\n\r\n")

    def test_unknown_length_on_http10_ends_with_the_close(self):
        data, length, frame, end, keep, _ = head(http(), context=False)
        self.assertNotIn(b"Transfer-Encoding", data)
        self.assertTrue(data.endswith(b"\r\nConnection: close\r\n\r\n"))
        self.assertEqual((length, frame, end, keep), (None, None, b"", False))

    def test_http10_keep_alive_is_said(self):
        data, _, _, _, keep, _ = head(http(), known=2, context=False)
        self.assertTrue(data.endswith(b"\r\nConnection: keep-alive\r\n\r\n"))
        self.assertTrue(keep)

    def test_no_body_for_head_and_bodyless_statuses(self):
        data, length, frame, _, keep, _ = head(http(), is_head=True)
        self.assertNotIn(b"Transfer-Encoding", data)
        self.assertEqual((length, frame, keep), (None, None, True))
        data, length, _, _, _, _ = head(http(), is_head=True, known=7)
        self.assertIn(b"\r\nContent-Length: 7\r\n", data, "HEAD says how long the GET would be")
        for status in ("204 No Content", "304 Not Modified", "101 Switching Protocols", "100 Continue"):
            data, length, frame, _, _, _ = head(http(), status=status, known=0)
            self.assertNotIn(b"Content-Length", data, status)
            self.assertNotIn(b"Transfer-Encoding", data, status)
            self.assertEqual((length, frame), (None, None), status)

    def test_the_server_decides_connection(self):
        data, _, _, _, keep, count = head(http(), headers=TEXT + [("Connection", "keep-alive")], known=1)
        self.assertNotIn(b"keep-alive", data, "the app's Connection header is dropped")
        self.assertTrue(keep)
        self.assertEqual(count, 3)
        data, _, _, _, keep, _ = head(http(), headers=TEXT + [("Connection", "Close")], known=1)
        self.assertFalse(keep, "but a close in it is honoured")
        self.assertTrue(data.endswith(b"\r\nConnection: close\r\n\r\n"))
        data, _, _, _, keep, _ = head(http(), keep=False, known=1)
        self.assertFalse(keep)
        self.assertTrue(data.endswith(b"\r\nConnection: close\r\n\r\n"))

    def test_the_apps_date_is_kept(self):
        data, *_ = head(http(), headers=TEXT + [("Date", "Mon, 02 Feb 2026 10:00:00 GMT")], known=1)
        self.assertEqual(data.count(b"Date: "), 1)
        self.assertIn(b"Date: Mon, 02 Feb 2026 10:00:00 GMT\r\n", data)

    def test_header_bytes_are_latin1(self):
        data, *_ = head(http(), headers=[("X-Name", "caf\xe9")], known=0)
        self.assertIn(b"X-Name: caf\xe9\r\n", data)


class UwsgiResponses(unittest.TestCase):
    def test_raw_http_with_the_requests_protocol(self):
        environ = {"SERVER_PROTOCOL": "HTTP/1.0"}
        data, length, frame, end, keep, count = head(uwsgi(), headers=TEXT + [("Connection", "keep-alive")], known=2, context=environ)
        self.assertEqual(data, b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n")
        self.assertEqual((length, frame, end, keep, count), (2, None, b"", False, 3))

    def test_the_protocol_is_read_when_the_head_goes_out(self):
        environ = {"SERVER_PROTOCOL": "HTTP/1.1"}
        environ["SERVER_PROTOCOL"] = ""  # as an app may leave it
        data, *_ = head(uwsgi(), context=environ)
        self.assertTrue(data.startswith(b"HTTP/1.0 200 OK\r\n"), "an empty SERVER_PROTOCOL: HTTP/1.0")

    def test_unknown_length_is_neither_chunked_nor_dated(self):
        data, length, frame, end, keep, _ = head(uwsgi(), context={"SERVER_PROTOCOL": "HTTP/1.1"})
        self.assertEqual(data, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        self.assertEqual((length, frame, end, keep), (None, None, b"", False))


class ServerErrors(unittest.TestCase):
    """The 500 the WSGI layer sends in place of a failed app's response comes from the
    protocol too (wsgi.Response.send_error)."""

    def test_http_and_uwsgi_500_heads(self):
        headers = [("Content-Type", "text/plain"), ("Content-Length", "22")]
        data, _, _, _, keep, count = head(http(), status="500 Internal Server Error", headers=headers, keep=False)
        self.assertEqual(
            data,
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nDate: "
            + DATE.encode() + b"\r\nConnection: close\r\n\r\n",
        )
        self.assertEqual((keep, count), (False, 4))
        data, _, _, _, keep, count = head(uwsgi(), status="500 Internal Server Error", headers=headers, keep=False,
                                          context={"SERVER_PROTOCOL": "HTTP/1.1"})
        self.assertEqual(data, b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n\r\n")
        self.assertEqual((keep, count), (False, 2))


if __name__ == "__main__":
    unittest.main()
