"""Timestamps as the vault stores them: aware UTC datetimes (SQLite hands them back naive; we re-attach UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["as_utc", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime, whichever backend returned it."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
