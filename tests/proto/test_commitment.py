"""The forget commitment: RFC 6962 Merkle roots over salted sample ids and inclusion proofs against them."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loravault.proto.commitment import (
    SALT_BYTES,
    Commitment,
    InclusionProof,
    check_inclusion,
    commit,
    inclusion_proof,
    new_salt,
    sample_leaf,
    verify_inclusion,
)
from loravault.proto.errors import CommitmentError, ManifestError

from conftest import GOLDEN_SALT, GOLDEN_SAMPLE_IDS

SALT = bytes(range(32))


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def reference_root(sample_ids, salt) -> str:
    """An independent construction: hash level by level, promoting a lone last node unchanged.

    For RFC 6962 trees this equals the recursive split at the largest power of two below n.
    """
    level = [_sha(b"\x00" + leaf) for leaf in sorted(_sha(salt + s.encode()) for s in sample_ids)]
    while len(level) > 1:
        pairs = [_sha(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    return level[0].hex()


def test_single_leaf_root_is_the_domain_separated_leaf_hash():
    leaf = _sha(SALT + b"only")
    assert sample_leaf("only", salt=SALT) == leaf
    assert commit(["only"], salt=SALT) == Commitment(root=_sha(b"\x00" + leaf).hex(), count=1)


def test_two_leaves_hash_as_an_rfc6962_node():
    a, b = sorted([_sha(SALT + b"x"), _sha(SALT + b"y")])
    expected = _sha(b"\x01" + _sha(b"\x00" + a) + _sha(b"\x00" + b)).hex()
    assert commit(["x", "y"], salt=SALT).root == expected


def test_golden_commitment_is_pinned():
    """The root in the golden manifest: a change here breaks every stored commitment."""
    root = commit(GOLDEN_SAMPLE_IDS, salt=GOLDEN_SALT).root
    assert root == "0082d49d0117269ad0d2e803edce8fe34bd04bea06ed2ba112723d60a9ed69e0"
    assert root == reference_root(GOLDEN_SAMPLE_IDS, GOLDEN_SALT)


ids_strategy = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
    min_size=1,
    max_size=40,
    unique=True,
)


@settings(max_examples=60, deadline=None)
@given(sample_ids=ids_strategy, salt=st.binary(min_size=SALT_BYTES, max_size=SALT_BYTES))
def test_root_matches_the_reference_and_ignores_order(sample_ids, salt):
    commitment = commit(sample_ids, salt=salt)
    assert commitment.count == len(sample_ids)
    assert commitment.root == reference_root(sample_ids, salt)
    assert commit(list(reversed(sample_ids)), salt=salt) == commitment


@settings(max_examples=40, deadline=None)
@given(sample_ids=ids_strategy, salt=st.binary(min_size=SALT_BYTES, max_size=SALT_BYTES), data=st.data())
def test_every_leaf_proof_verifies_and_fails_for_another_root(sample_ids, salt, data):
    commitment = commit(sample_ids, salt=salt)
    other = commit(sample_ids + ["\x00not-in-the-set"], salt=salt)
    for sample_id in sample_ids:
        proof = inclusion_proof(sample_ids, salt=salt, sample_id=sample_id)
        leaf = sample_leaf(sample_id, salt=salt)
        assert check_inclusion(root=commitment.root, count=commitment.count, leaf=leaf, proof=proof)
        verify_inclusion(root=commitment.root, count=commitment.count, leaf=leaf, proof=proof)
        assert not check_inclusion(root=other.root, count=commitment.count, leaf=leaf, proof=proof)
    # a leaf of another salt, or a tampered path, does not verify
    target = data.draw(st.sampled_from(sample_ids))
    proof = inclusion_proof(sample_ids, salt=salt, sample_id=target)
    wrong_salt_leaf = sample_leaf(target, salt=bytes(b ^ 1 for b in salt))
    assert not check_inclusion(root=commitment.root, count=commitment.count, leaf=wrong_salt_leaf, proof=proof)
    if proof.path:
        position = data.draw(st.integers(min_value=0, max_value=len(proof.path) - 1))
        flipped = list(proof.path)
        flipped[position] = ("1" if flipped[position][0] == "0" else "0") + flipped[position][1:]
        tampered = InclusionProof(index=proof.index, path=tuple(flipped))
        leaf = sample_leaf(target, salt=salt)
        assert not check_inclusion(root=commitment.root, count=commitment.count, leaf=leaf, proof=tampered)
        truncated = InclusionProof(index=proof.index, path=proof.path[:-1])
        assert not check_inclusion(root=commitment.root, count=commitment.count, leaf=leaf, proof=truncated)


def test_proof_fails_for_a_leaf_at_another_index():
    ids = [f"s{i}" for i in range(7)]
    commitment = commit(ids, salt=SALT)
    proof = inclusion_proof(ids, salt=SALT, sample_id="s3")
    moved = InclusionProof(index=(proof.index + 1) % 7, path=proof.path)
    leaf = sample_leaf("s3", salt=SALT)
    assert not check_inclusion(root=commitment.root, count=7, leaf=leaf, proof=moved)


def test_proof_with_extra_hashes_is_refused():
    ids = ["a", "b", "c", "d"]
    commitment = commit(ids, salt=SALT)
    proof = inclusion_proof(ids, salt=SALT, sample_id="a")
    longer = InclusionProof(index=proof.index, path=proof.path + ("00" * 32,))
    result = check_inclusion(root=commitment.root, count=4, leaf=sample_leaf("a", salt=SALT), proof=longer)
    assert not result and "wrong for leaf" in result.reason


def test_verify_inclusion_raises_commitment_error_with_the_reason():
    ids = ["a", "b", "c"]
    commitment = commit(ids, salt=SALT)
    proof = inclusion_proof(ids, salt=SALT, sample_id="a")
    with pytest.raises(CommitmentError, match="another root"):
        verify_inclusion(root="11" * 32, count=commitment.count, leaf=sample_leaf("a", salt=SALT), proof=proof)
    assert issubclass(CommitmentError, ManifestError)


BAD_CHECK_INPUTS = [
    pytest.param({"root": "AB" * 32}, "root", id="root-uppercase"),
    pytest.param({"count": 0}, "count", id="count-zero"),
    pytest.param({"count": True}, "count", id="count-bool"),
    pytest.param({"leaf": b"short"}, "leaf", id="leaf-short"),
    pytest.param({"leaf": "ab" * 32}, "leaf", id="leaf-hex-string"),
    pytest.param({"proof": ("x",)}, "InclusionProof", id="proof-not-a-proof"),
    pytest.param({"count": 1}, "outside", id="index-beyond-count"),
]


@pytest.mark.parametrize(("changes", "reason"), BAD_CHECK_INPUTS)
def test_check_inclusion_reports_bad_inputs_without_raising(changes, reason):
    ids = ["a", "b", "c"]
    commitment = commit(ids, salt=SALT)
    target = max(ids, key=lambda s: sample_leaf(s, salt=SALT))  # the last leaf: index 2
    arguments = {
        "root": commitment.root,
        "count": commitment.count,
        "leaf": sample_leaf(target, salt=SALT),
        "proof": inclusion_proof(ids, salt=SALT, sample_id=target),
    }
    assert check_inclusion(**arguments)
    arguments.update(changes)
    result = check_inclusion(**arguments)
    assert not result and reason in result.reason


@pytest.mark.parametrize(
    ("sample_ids", "salt", "message"),
    [
        ([], SALT, "at least one"),
        (["a", "a"], SALT, "repeat"),
        (["a", ""], SALT, "non-empty"),
        (["a"], b"short", "32 bytes"),
        (["a"], bytearray(32), "32 bytes"),
    ],
    ids=["empty", "duplicates", "empty-id", "short-salt", "salt-not-bytes"],
)
def test_commit_refuses_bad_input(sample_ids, salt, message):
    with pytest.raises(ValueError, match=message):
        commit(sample_ids, salt=salt)


def test_inclusion_proof_refuses_a_sample_outside_the_set():
    with pytest.raises(ValueError, match="not in the committed set"):
        inclusion_proof(["a", "b"], salt=SALT, sample_id="c")


def test_salt_hides_the_ids():
    assert commit(["a", "b"], salt=new_salt()) != commit(["a", "b"], salt=new_salt())
    assert len(new_salt()) == SALT_BYTES


@pytest.mark.parametrize(
    "kwargs",
    [{"index": -1, "path": ()}, {"index": 0, "path": ("zz",)}, {"index": 0, "path": ("00" * 32,) * 65}],
    ids=["negative-index", "path-not-hex", "path-too-long"],
)
def test_inclusion_proof_validates_itself(kwargs):
    with pytest.raises(ValueError):
        InclusionProof(**kwargs)
