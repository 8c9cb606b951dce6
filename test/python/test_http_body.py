"""Request bodies (protocols/base.py LengthReader, protocols/http.py ChunkedReader): split,
coalesced with what follows, cut short, oversized lines and malformed chunks."""

import unittest

from helpers import pieces, read_body

from emperor_worker.protocols import ProtocolError
from emperor_worker.protocols.base import MAX_TAKE, LengthReader
from emperor_worker.protocols.http import MAX_CHUNK_LINE, ChunkedReader

CHUNKED = b"5\r\nhello\r\n6;ext=1\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n"
DECODED = b"hello world0123456789"
NEXT = b"GET /next HTTP/1.1\r\n"

MID_BODY = "the client closed the connection in the middle of the request body"
MID_CHUNKED = "the client closed the connection in the middle of a chunked body"


class Length(unittest.TestCase):
    def test_takes_exactly_its_bytes_and_leaves_the_next_request(self):
        body, rest = read_body(LengthReader(5), [b"hel", b"lo" + NEXT])
        self.assertEqual((body, rest), (b"hello", NEXT))

    def test_split_at_every_size(self):
        data = bytes(range(256)) * 3
        for size in (1, 2, 7, 255, 768):
            body, rest = read_body(LengthReader(len(data)), pieces(data + NEXT, size))
            self.assertEqual((body, rest), (data, NEXT), size)

    def test_reads_no_more_than_asked(self):
        reader = LengthReader(10)
        buf = bytearray(b"0123456789")
        self.assertEqual(reader.read(buf, 3), b"012")
        self.assertEqual(reader.read(buf, 0), b"3", "at least one byte per read")
        self.assertEqual(reader.read(buf, 100), b"456789")
        self.assertEqual(reader.read(buf, 100), b"", "the end")
        big = LengthReader(MAX_TAKE * 2)
        self.assertEqual(len(big.read(bytearray(MAX_TAKE * 2), MAX_TAKE * 2)), MAX_TAKE, "one read takes at most MAX_TAKE")

    def test_waits_for_bytes_and_says_why_a_close_hurts(self):
        reader = LengthReader(4)
        self.assertIsNone(reader.read(bytearray(), 4))
        self.assertEqual(reader.eof_reason, MID_BODY)


class Chunked(unittest.TestCase):
    def test_a_chunked_body_with_extensions_and_trailers(self):
        body, rest = read_body(ChunkedReader(), [CHUNKED + NEXT])
        self.assertEqual((body, rest), (DECODED, NEXT))

    def test_split_at_every_byte_and_every_cut(self):
        self.assertEqual(read_body(ChunkedReader(), pieces(CHUNKED + NEXT, 1)), (DECODED, NEXT))
        for cut in range(1, len(CHUNKED)):
            got = read_body(ChunkedReader(), [CHUNKED[:cut], CHUNKED[cut:] + NEXT])
            self.assertEqual(got, (DECODED, NEXT), cut)

    def test_small_reads(self):
        body, rest = read_body(ChunkedReader(), pieces(CHUNKED, 3), want=2)
        self.assertEqual((body, rest), (DECODED, b""))
        reader = ChunkedReader()
        buf = bytearray(b"a\r\n0123456789\r\n0\r\n\r\n")
        self.assertEqual(reader.read(buf, 4), b"0123", "no more than asked")

    def test_an_empty_body_and_hex_sizes(self):
        self.assertEqual(read_body(ChunkedReader(), [b"0\r\n\r\n"]), (b"", b""))
        self.assertEqual(read_body(ChunkedReader(), [b"1F\r\n" + b"x" * 31 + b"\r\n0\r\n\r\n"]), (b"x" * 31, b""))
        self.assertEqual(read_body(ChunkedReader(), [b"0000000000000003 \r\nabc\r\n0\r\n\r\n"]), (b"abc", b""))

    def test_bad_chunk_sizes(self):
        for line, shown in [(b"zz", b"zz"), (b"", b""), (b"-1", b"-1"), (b"0x5", b"0x5"), (b"1" * 17, b"1" * 17), (b"5 5", b"5 5")]:
            reader = ChunkedReader()
            with self.assertRaises(ProtocolError) as caught:
                reader.read(bytearray(line + b"\r\nhello\r\n0\r\n\r\n"), 100)
            self.assertEqual(caught.exception.reason, "chunked body: bad chunk size %r" % shown[:20], line)

    def test_a_chunk_not_followed_by_crlf_fails_before_its_last_bytes_are_handed_out(self):
        reader = ChunkedReader()
        buf = bytearray(b"5\r\nhelloX\r\n0\r\n\r\n")
        with self.assertRaises(ProtocolError) as caught:
            reader.read(buf, 100)
        self.assertEqual(caught.exception.reason, "chunked body: missing CRLF after a chunk")
        # Part of a chunk is handed out at once; its end only with the CRLF.
        reader = ChunkedReader()
        buf = bytearray(b"5\r\nhel")
        self.assertEqual(reader.read(buf, 100), b"hel")
        buf += b"lo"
        self.assertIsNone(reader.read(buf, 100), "the last bytes wait for the CRLF")
        self.assertEqual(reader.eof_reason, MID_CHUNKED)
        buf += b"\r"
        self.assertIsNone(reader.read(buf, 100))
        buf += b"\n0\r\n\r\n"
        self.assertEqual(reader.read(buf, 100), b"lo")
        self.assertEqual(reader.read(buf, 100), b"")

    def test_lines_over_the_limit(self):
        for data in (
            b"1" * (MAX_CHUNK_LINE + 1),  # a size line that never ends
            b"3\r\nabc" + b"x" * (MAX_CHUNK_LINE + 1),  # the CRLF after a chunk that never comes
            b"0\r\nX-Trailer: " + b"t" * MAX_CHUNK_LINE,  # a trailer that never ends
        ):
            reader = ChunkedReader()
            with self.assertRaises(ProtocolError) as caught:
                read_body(reader, [data])
            self.assertEqual(caught.exception.reason, "chunked body: chunk size line too long")
        # At the limit, it still waits.
        reader = ChunkedReader()
        buf = bytearray(b"3\r\nabc" + b"x" * MAX_CHUNK_LINE)
        self.assertIsNone(reader.read(buf, 100))

    def test_what_a_close_means_at_each_point(self):
        cases = [
            (b"", MID_CHUNKED),  # before the first size line
            (b"5", MID_CHUNKED),  # in a size line
            (b"5\r\n", MID_BODY),  # before a chunk's data
            (b"5\r\nhe", MID_BODY),  # in a chunk's data
            (b"5\r\nhello", MID_CHUNKED),  # before the CRLF after it
            (b"5\r\nhello\r\n0\r\nX: 1\r\n", MID_CHUNKED),  # in the trailers
        ]
        for data, reason in cases:
            reader = ChunkedReader()
            buf = bytearray(data)
            while True:
                got = reader.read(buf, 100)
                if got is None:
                    break
                self.assertTrue(got, "the body must not end early: %r" % data)
            self.assertEqual(reader.eof_reason, reason, data)


if __name__ == "__main__":
    unittest.main()
