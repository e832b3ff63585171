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
        use_rslora=schema.use_rslora,
        rank_pattern=dict(schema.rank_pattern),
        alpha_pattern=dict(schema.alpha_pattern),
        peft_metadata=schema.peft_metadata,
    )


def schema_from_pb(message: pb.AdapterSchema) -> AdapterSchema:
    """Build and validate a schema from the wire; InvalidArgumentError names what is wrong."""
    for what, entries in (("tensors", message.tensors), ("rank_pattern entries", message.rank_pattern),
                          ("alpha_pattern entries", message.alpha_pattern)):
        if len(entries) > MAX_TENSORS:  # before building a Python object of each
            raise InvalidArgumentError(f"adapter schema lists {len(entries)} {what}, at most {MAX_TENSORS} allowed")
    return AdapterSchema(
        rank=int(message.rank),
        alpha=float(message.alpha),
        target_modules=tuple(sorted(message.target_modules)),
        tensors=tuple(TensorSpec(t.name, tuple(int(d) for d in t.shape)) for t in message.tensors),
        dtype=message.dtype,
        base_fingerprint=message.base_fingerprint,
        use_rslora=message.use_rslora,
        rank_pattern=tuple(sorted(message.rank_pattern.items())),
        alpha_pattern=tuple(sorted(message.alpha_pattern.items())),
        peft_metadata=message.peft_metadata,
    )
