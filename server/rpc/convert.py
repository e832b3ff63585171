"""Conversions between the vault's records and the wire messages of loravault.v1."""

from __future__ import annotations

import datetime as dt

from loravault.core.schema_wire import schema_from_pb, schema_to_pb
from loravault.proto import loravault_pb2 as pb

from ..vault import AdapterRecord, VersionRecord

__all__ = ["adapter_to_pb", "version_to_pb", "unix_ms"]


def unix_ms(value: dt.datetime | float) -> int:
    """Milliseconds since the epoch from a datetime (naive means UTC) or seconds as a number."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return int(value.timestamp() * 1000)
    return int(float(value) * 1000)


def adapter_to_pb(record: AdapterRecord) -> pb.Adapter:
    return pb.Adapter(
        tenant=record.tenant,
        name=record.name,
        schema=schema_to_pb(record.schema),
        head_version=record.head_version,
        erasure_floor=record.floor,
        created_unix_ms=unix_ms(record.created_at),
    )


def version_to_pb(record: VersionRecord) -> pb.Version:
    return pb.Version(
        number=record.number,
        blob_sha256=record.blob_sha256,
        size=record.size,
        parent=record.parent or 0,
        kind=record.kind,
        manifest_hash=record.manifest_hash or "",
        created_unix_ms=unix_ms(record.created_at),
        purged=bool(record.purged),
    )
