"""Bodies inflated piece by piece: their content, the limit on what they inflate to, bad input."""

import gzip
import sys

import pytest

from tensorflow_serving.model_servers.rest import content_encoding
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status


def inflate(data: bytes, limit: int = 0, chunk: int = 7) -> bytes:
    body = content_encoding.GzipBody(limit)
    for start in range(0, len(data), chunk):
        body.feed(data[start : start + chunk])
    return body.finish()


def test_a_body_fed_in_small_chunks_inflates_whole():
    payload = b'{"instances": [[1.0, 2.0]]}' * 100
    assert inflate(gzip.compress(payload)) == payload


def test_several_gzip_members_inflate_to_their_concatenation():
    assert inflate(gzip.compress(b"ab") + gzip.compress(b"cd")) == b"abcd"


def test_inflating_past_the_limit_stops_there_without_inflating_the_rest():
    bomb = gzip.compress(b"\0" * (50 << 20))  # 50 MB in about 50 KB
    body = content_encoding.GzipBody(limit=1000)
    with pytest.raises(content_encoding.InflatedTooLarge) as raised:
        body.feed(bomb)
    assert 1000 < raised.value.size <= 1001


def test_exactly_the_limit_is_accepted():
    assert inflate(gzip.compress(b"x" * 1000), limit=1000) == b"x" * 1000


def test_bytes_that_are_not_gzip_and_truncated_streams_are_invalid_arguments():
    with pytest.raises(status.ServingError, match="not valid gzip"):
        inflate(b"plain json")
    with pytest.raises(status.ServingError, match="ends before its end marker"):
        inflate(gzip.compress(b"abc" * 100)[:-5])


@pytest.mark.parametrize("header", [None, b"", b"identity", b" Identity "])
def test_identity_needs_no_decoder(header):
    assert content_encoding.body_decoder(header, 10) is None


@pytest.mark.parametrize("header", [b"gzip", b"GZIP", b"x-gzip"])
def test_gzip_gets_a_decoder(header):
    assert isinstance(content_encoding.body_decoder(header, 10), content_encoding.GzipBody)


@pytest.mark.parametrize("header", [b"br", b"deflate", b"gzip, br"])
def test_other_codings_are_refused_with_415_naming_them(header):
    with pytest.raises(content_encoding.UnsupportedEncoding) as raised:
        content_encoding.body_decoder(header, 10)
    assert raised.value.http_status() == 415
    assert header.decode() in raised.value.message


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
