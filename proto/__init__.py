"""The wire contract: loravault.proto's generated stubs, the status-code table, and signed envelopes.

The stubs are the submodules `loravault_pb2` and `loravault_pb2_grpc` (regenerate with `make proto`).
"""

from .status import STATUS_BY_ERROR, code_for, error_name_for

__all__ = ["STATUS_BY_ERROR", "code_for", "error_name_for"]
