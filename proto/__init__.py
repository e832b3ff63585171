"""The wire contract: generated stubs, the status-code table, keys, in-toto statements, DSSE envelopes, the
erasure manifest and receipt, and the forget commitment. Works on bytes only: proto never imports torch.

The stubs are the submodules `loravault_pb2` and `loravault_pb2_grpc` (regenerate with `make proto`).
"""

from .chunks import DOWNLOAD_CHUNKS, ERASURE_CHUNKS, MAX_CHUNK_BYTES, UPLOAD_CHUNKS, ChunkFraming
from .commitment import (
    Commitment,
    InclusionProof,
    check_inclusion,
    commit,
    inclusion_proof,
    new_salt,
    sample_leaf,
    verify_inclusion,
)
from .digests import is_sha256_hex
from .envelope import (
    PAYLOAD_TYPE,
    SignatureCheck,
    check_signatures,
    parse_envelope,
    sign_statement,
    verify_envelope,
    verify_signatures,
)
from .errors import (
    CommitmentError,
    EnvelopeError,
    MalformedEnvelopeError,
    MalformedKeyError,
    ManifestError,
    SignatureError,
    TimeWindowError,
)
from .keys import (
    generate_private_key_pem,
    key_id,
    load_private_key,
    public_key_dict,
    public_key_from_dict,
    save_private_key,
    signer_from_pem,
)
from .manifest import (
    ERASURE_PREDICATE_TYPE,
    ErasureManifest,
    ErasureMethod,
    ForgetSet,
    SignedManifest,
    ValidityWindow,
    check_time_window,
    new_request_id,
    sign_manifest,
    verify_manifest,
    verify_signed_manifest,
    verify_time_window,
)
from .names import MAX_NAME_LENGTH, check_name, is_valid_name
from .receipt import RECEIPT_PREDICATE_TYPE, Receipt, check_receipt, sign_receipt, verify_receipt
from .rotation import KEY_ROTATION_PREDICATE_TYPE, KeyRotation, sign_key_rotation
from .statement import Statement, Subject
from .status import STATUS_BY_ERROR, code_for, error_class_for

__all__ = [
    "ChunkFraming", "Commitment", "CommitmentError", "DOWNLOAD_CHUNKS", "ERASURE_CHUNKS", "ERASURE_PREDICATE_TYPE",
    "EnvelopeError", "ErasureManifest", "ErasureMethod",
    "ForgetSet", "InclusionProof", "KEY_ROTATION_PREDICATE_TYPE", "MAX_CHUNK_BYTES", "MAX_NAME_LENGTH", "KeyRotation", "MalformedEnvelopeError",
    "MalformedKeyError", "ManifestError", "PAYLOAD_TYPE", "RECEIPT_PREDICATE_TYPE", "Receipt", "STATUS_BY_ERROR",
    "SignatureCheck", "SignatureError", "SignedManifest", "Statement", "Subject", "TimeWindowError", "UPLOAD_CHUNKS",
    "ValidityWindow",
    "check_inclusion", "check_name", "check_receipt", "check_signatures", "check_time_window", "code_for", "commit",
    "error_class_for", "generate_private_key_pem", "inclusion_proof", "is_sha256_hex", "is_valid_name", "key_id", "load_private_key", "new_request_id",
    "new_salt", "parse_envelope", "public_key_dict", "public_key_from_dict", "sample_leaf", "save_private_key",
    "sign_key_rotation", "sign_manifest", "sign_receipt", "sign_statement", "signer_from_pem", "verify_envelope",
    "verify_inclusion", "verify_manifest", "verify_receipt", "verify_signatures", "verify_signed_manifest",
    "verify_time_window",
]
