"""A download is assembled in a buffer of its recorded size: a stream longer or shorter than that is data loss."""

import hashlib

import pytest

from loravault.client.sdk import _receive_blob
from loravault.core import DataLossError
from loravault.proto import loravault_pb2 as pb


def test_chunks_and_parsed_messages_fill_the_buffer_in_order_with_their_digest():
    data, digest = _receive_blob(iter([memoryview(b"abc"), pb.DownloadMessage(chunk=b"de")]), size=5, what="d")
    assert data == bytearray(b"abcde") and digest == hashlib.sha256(b"abcde").hexdigest()


@pytest.mark.parametrize("chunks, size, message", [
    ([b"abc", b"def"], 5, "more than its recorded 5 bytes"),
    ([b"abc"], 5, "ended after 3 of its recorded 5 bytes"),
], ids=["too-long", "too-short"])
def test_a_stream_that_differs_from_its_recorded_size_is_refused(chunks, size, message):
    with pytest.raises(DataLossError, match=message):
        _receive_blob(iter(memoryview(c) for c in chunks), size=size, what="download of a v1")
