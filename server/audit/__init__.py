"""The audit log: hash-chained erasure entries in the vault's database, signed receipts and checkpoints, and
the offline verification of all of it (`python -m loravault.server audit verify`)."""

from .body import ROUND_ENTRY_KIND, ErasureRecord, FederationRoundRecord, KeyChangeRecord, parse_round_body
from .chain import GENESIS_HASH, AuditEntry, check_chain, verify_chain
from .checkpoints import CHECKPOINT_PREDICATE_TYPE, Checkpoint, sign_checkpoint, verify_checkpoint
from .export import LogSnapshot, read_data_folder, read_export, write_export
from .log import Appended, AuditLog
from .rows import StoredCheckpoint, StoredErasure
from .verify import AuditReport, check_log, verify_log

__all__ = [
    "CHECKPOINT_PREDICATE_TYPE",
    "GENESIS_HASH",
    "ROUND_ENTRY_KIND",
    "Appended",
    "AuditEntry",
    "AuditLog",
    "AuditReport",
    "Checkpoint",
    "ErasureRecord",
    "FederationRoundRecord",
    "KeyChangeRecord",
    "LogSnapshot",
    "StoredCheckpoint",
    "StoredErasure",
    "check_chain",
    "check_log",
    "parse_round_body",
    "read_data_folder",
    "read_export",
    "sign_checkpoint",
    "verify_chain",
    "verify_checkpoint",
    "verify_log",
    "write_export",
]
