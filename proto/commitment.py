"""The forget commitment: a Merkle root over salted sample-id hashes, and inclusion proofs against it.

A manifest must say which samples an erasure removes without revealing them to the server. The tenant commits
to the set with a Merkle tree hashed as in RFC 6962 (section 2.1), with domain separation so a leaf can never
pass for an inner node:

    leaf data   d_i  = SHA-256(salt || sample_id.encode("utf-8"))     salt: 32 random bytes kept by the tenant
    leaf hash        = SHA-256(0x00 || d_i)
    node hash        = SHA-256(0x01 || left || right)
    root        MTH  = RFC 6962's Merkle Tree Hash over the leaf data sorted bytewise

Sorting the leaf data makes the root independent of the order the ids were given in. The manifest carries the
root (hex) and the number of leaves. Later the tenant can show an auditor that a receipt covers a sample: it
reveals the sample id, the salt and `inclusion_proof(...)`, and the auditor runs `verify_inclusion`.

NOTE: revealing the salt lets the auditor test guesses against the sibling hashes in the proof; show proofs
only to parties that may learn whether a guessed id was in the forget set.

Example:

    >>> salt = bytes(32)
    >>> ids = ["s1", "s2", "s3"]
    >>> c = commit(ids, salt=salt)
    >>> proof = inclusion_proof(ids, salt=salt, sample_id="s2")
    >>> bool(check_inclusion(root=c.root, count=c.count, leaf=sample_leaf("s2", salt=salt), proof=proof))
    True
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from .digests import is_sha256_hex
from .errors import CommitmentError

__all__ = [
    "SALT_BYTES",
    "Commitment",
    "InclusionProof",
    "InclusionCheck",
    "new_salt",
    "sample_leaf",
    "commit",
    "inclusion_proof",
    "check_inclusion",
    "verify_inclusion",
]

SALT_BYTES = 32
_MAX_PROOF_HASHES = 64  # a tree of 2**64 leaves: any longer path is forged


def _hash_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _hash_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """RFC 6962's k: the largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _tree_hash(hashes: list[bytes]) -> bytes:
    """MTH over leaf hashes (at least one)."""
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return _hash_node(_tree_hash(hashes[:k]), _tree_hash(hashes[k:]))


def _audit_path(index: int, hashes: list[bytes]) -> list[bytes]:
    """RFC 6962 PATH(m, D[n]): sibling subtree hashes from the leaf up to the root."""
    if len(hashes) == 1:
        return []
    k = _split(len(hashes))
    if index < k:
        return _audit_path(index, hashes[:k]) + [_tree_hash(hashes[k:])]
    return _audit_path(index - k, hashes[k:]) + [_tree_hash(hashes[:k])]


@dataclass(frozen=True)
class Commitment:
    """A forget commitment: Merkle root (64 lowercase hex) over `count` (at least one) salted sample ids."""

    root: str
    count: int

    def __post_init__(self) -> None:
        if not is_sha256_hex(self.root):
            raise ValueError("commitment root must be 64 lowercase hex characters")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"commitment count must be a positive integer, got {self.count!r}")


@dataclass(frozen=True)
class InclusionProof:
    """Where a leaf sits in the sorted leaves, and the sibling hashes (hex) from it up to the root."""

    index: int
    path: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise ValueError(f"proof index must be a non-negative integer, got {self.index!r}")
        path = tuple(self.path)
        if len(path) > _MAX_PROOF_HASHES or not all(is_sha256_hex(h) for h in path):
            raise ValueError(f"proof path must be at most {_MAX_PROOF_HASHES} hashes of 64 lowercase hex")
        object.__setattr__(self, "path", path)


@dataclass(frozen=True)
class InclusionCheck:
    """The outcome of `check_inclusion`: truthy when the proof holds, else falsy with the reason."""

    reason: str = ""

    def __bool__(self) -> bool:
        return not self.reason


def new_salt() -> bytes:
    """A fresh 32-byte salt from the OS CSPRNG; the tenant keeps it with its erasure records."""
    return secrets.token_bytes(SALT_BYTES)


def sample_leaf(sample_id: str, *, salt: bytes) -> bytes:
    """The leaf data for one sample: SHA-256(salt || sample id in UTF-8), 32 bytes.

    Raises:
        ValueError: the salt is not 32 bytes, or the id is empty or not encodable as UTF-8.
    """
    if not isinstance(salt, bytes) or len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes")
    if not isinstance(sample_id, str) or not sample_id:
        raise ValueError("sample id must be a non-empty string")
    return hashlib.sha256(salt + sample_id.encode("utf-8")).digest()


def _sorted_leaves(sample_ids: Iterable[str], *, salt: bytes) -> list[bytes]:
    ids = list(sample_ids)
    if not ids:
        raise ValueError("a forget commitment needs at least one sample id")
    if len(set(ids)) != len(ids):
        raise ValueError(f"sample ids repeat: {len(ids)} given, {len(set(ids))} distinct")
    return sorted(sample_leaf(sample_id, salt=salt) for sample_id in ids)


def commit(sample_ids: Iterable[str], *, salt: bytes) -> Commitment:
    """The forget commitment over distinct sample ids (their order does not matter).

    Raises:
        ValueError: no ids, repeated ids, or a bad salt or id (see `sample_leaf`).
    """
    leaves = _sorted_leaves(sample_ids, salt=salt)
    root = _tree_hash([_hash_leaf(leaf) for leaf in leaves])
    return Commitment(root=root.hex(), count=len(leaves))


def inclusion_proof(sample_ids: Iterable[str], *, salt: bytes, sample_id: str) -> InclusionProof:
    """The proof that `sample_id` is one of the committed `sample_ids`.

    Raises:
        ValueError: as `commit`, or `sample_id` is not among `sample_ids`.
    """
    leaves = _sorted_leaves(sample_ids, salt=salt)
    target = sample_leaf(sample_id, salt=salt)
    if target not in leaves:
        raise ValueError("the sample id is not in the committed set")
    index = leaves.index(target)
    path = _audit_path(index, [_hash_leaf(leaf) for leaf in leaves])
    return InclusionProof(index=index, path=tuple(h.hex() for h in path))


def _root_from_path(*, index: int, count: int, leaf_hash: bytes, path: Iterable[bytes]) -> bytes | None:
    """RFC 9162 section 2.1.3.2: the root the path leads to, or None when the path has the wrong shape."""
    fn, sn, node = index, count - 1, leaf_hash
    for sibling in path:
        if sn == 0:
            return None  # more hashes than the tree has levels
        if fn & 1 or fn == sn:
            node = _hash_node(sibling, node)
            while not fn & 1 and fn != 0:  # climb past levels where this subtree has no right sibling
                fn, sn = fn >> 1, sn >> 1
        else:
            node = _hash_node(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    return node if sn == 0 else None


def check_inclusion(*, root: str, count: int, leaf: bytes, proof: InclusionProof) -> InclusionCheck:
    """Whether `proof` leads from `leaf` (see `sample_leaf`) to `root` in a tree of `count` leaves.

    Never raises for a wrong proof or malformed inputs: the reason says what failed.
    """
    if not is_sha256_hex(root):
        return InclusionCheck("root must be 64 lowercase hex characters")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        return InclusionCheck(f"count must be a positive integer, got {count!r}")
    if not isinstance(leaf, bytes) or len(leaf) != 32:
        return InclusionCheck("leaf must be the 32-byte salted sample hash")
    if not isinstance(proof, InclusionProof):
        return InclusionCheck("proof must be an InclusionProof")
    if proof.index >= count:
        return InclusionCheck(f"proof index {proof.index} is outside a tree of {count} leaves")
    computed = _root_from_path(
        index=proof.index,
        count=count,
        leaf_hash=_hash_leaf(leaf),
        path=(bytes.fromhex(h) for h in proof.path),
    )
    if computed is None:
        return InclusionCheck(f"proof has {len(proof.path)} hashes, wrong for leaf {proof.index} of {count}")
    if not secrets.compare_digest(computed.hex(), root):
        return InclusionCheck(f"proof for leaf {proof.index} of {count} leads to another root")
    return InclusionCheck()


def verify_inclusion(*, root: str, count: int, leaf: bytes, proof: InclusionProof) -> None:
    """Like `check_inclusion`, but raises.

    Raises:
        CommitmentError: the proof does not lead from the leaf to the root.
    """
    result = check_inclusion(root=root, count=count, leaf=leaf, proof=proof)
    if not result:
        raise CommitmentError(f"forget commitment {str(root)[:16]}...: {result.reason}")
