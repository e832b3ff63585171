"""One loop holds every declared byte stream (uploads, erasure deltas, federation rounds) to its size, digest
and chunk bound, with one code per cause: RESOURCE_EXHAUSTED for a size limit, INVALID_ARGUMENT otherwise."""

import hashlib

import pytest

from loravault.core.errors import InvalidArgumentError, ResourceExhaustedError
from loravault.server.declared_stream import bounded_chunks, read_declared
from loravault.server.uploads import UploadHeader, stream_to_blob

DATA = b"abcdef"
SHA = hashlib.sha256(DATA).hexdigest()


def _read(chunks, *, size=len(DATA), sha256=SHA, max_chunk_bytes=4):
    return read_declared(iter(chunks), size=size, sha256=sha256, max_chunk_bytes=max_chunk_bytes, what="delta",
                         declared_by="the header")


BAD = [
    pytest.param([b"abcde", b"f"], {}, ResourceExhaustedError, "delta: chunk of 5 bytes exceeds the 4-byte", id="chunk"),
    pytest.param([b"abc", b"def", b"g"], {}, ResourceExhaustedError, "more than the 6 bytes", id="past-size"),
    pytest.param([b"abc", b"de"], {}, InvalidArgumentError, "ended after 5 of 6 declared bytes", id="truncated"),
    pytest.param([b"abc", b"deF"], {}, InvalidArgumentError, "the header declared", id="digest"),
    pytest.param([], {"size": 0, "sha256": hashlib.sha256(b"").hexdigest()}, None, None, id="empty-as-declared"),
]


@pytest.mark.parametrize(("chunks", "changes", "error", "match"), BAD)
def test_a_stream_other_than_declared_is_refused(chunks, changes, error, match):
    if error is None:
        assert _read(chunks, **changes) == b""
        return
    with pytest.raises(error, match=match):
        _read(chunks, **changes)


def test_the_declared_bytes_come_back_whole_from_bytes_and_views():
    assert _read([memoryview(b"abc"), b"def"]) == DATA


def test_a_chunk_is_refused_before_it_is_yielded():
    seen = []
    with pytest.raises(ResourceExhaustedError):
        for chunk in bounded_chunks(iter([b"ab", b"cdefgh"]), size=8, max_chunk_bytes=4, what="x"):
            seen.append(chunk)
    assert seen == [b"ab"]


class _Sink:
    def __init__(self):
        self.written = []

    def write(self, chunk):
        self.written.append(chunk)

    feed = write


def test_upload_and_erasure_refuse_an_oversized_chunk_with_the_same_code():
    header = UploadHeader(tenant="acme", adapter="support", parent_version=0, total_size=8)
    sink = _Sink()
    with pytest.raises(ResourceExhaustedError, match="upload to acme/support: chunk of 5 bytes"):
        stream_to_blob(sink, sink, iter([b"abcde"]), header=header, max_chunk_bytes=4)
    assert sink.written == []
    with pytest.raises(ResourceExhaustedError, match="chunk of 5 bytes"):
        _read([b"abcde"])
