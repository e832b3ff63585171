"""The adapter schema on the wire: one conversion to and from loravault.v1.AdapterSchema for both sides."""

from __future__ import annotations

from loravault.proto import loravault_pb2 as pb

from .adapter_schema import MAX_TENSORS, AdapterSchema, TensorSpec
from .errors import InvalidArgumentError

__all__ = ["schema_to_pb", "schema_from_pb"]


def schema_to_pb(schema: AdapterSchema) -> pb.AdapterSchema:
    return pb.AdapterSchema(
        rank=schema.rank,
        alpha=schema.alpha,
        target_modules=list(schema.target_modules),
        tensors=[pb.TensorSpec(name=t.name, shape=list(t.shape)) for t in schema.tensors],
        dtype=schema.dtype,
        base_fingerprint=schema.base_fingerprint,
    )


def schema_from_pb(message: pb.AdapterSchema) -> AdapterSchema:
    """Build and validate a schema from the wire; InvalidArgumentError names what is wrong."""
    if len(message.tensors) > MAX_TENSORS:  # before building a TensorSpec of each
        raise InvalidArgumentError(f"adapter schema lists {len(message.tensors)} tensors, at most {MAX_TENSORS} allowed")
    return AdapterSchema(
        rank=int(message.rank),
        alpha=float(message.alpha),
        target_modules=tuple(sorted(message.target_modules)),
        tensors=tuple(TensorSpec(t.name, tuple(int(d) for d in t.shape)) for t in message.tensors),
        dtype=message.dtype,
        base_fingerprint=message.base_fingerprint,
    )
