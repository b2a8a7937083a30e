"""Column types that map to the best native type on each engine (JSONB on PostgreSQL), and
StrEnum vocabularies stored as plain text."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import JSON, DateTime, String, Text, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

from store.db import dump_json, load_json

# JSONB on PostgreSQL (indexable, searchable with jsonb_path_query), JSON text on SQLite.
JsonDocument = JSON().with_variant(JSONB(), "postgresql")


class JsonText(TypeDecorator[Any]):
    """A JSON document kept as its text, which the server stores without parsing or checking
    it (`text`): for documents only this program writes and only ever reads whole (the rule
    results cache). Written as `store.db.dump_json` encodes it (`bytes`: already encoded),
    read back by `store.db.load_json`."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return value.decode() if type(value) is bytes else dump_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else load_json(value)


# JSON text on both engines, unchecked by PostgreSQL (`JsonText`; SQLite's JSON is text anyway).
# Still a JSON column to `store.bulk`, whose COPY writes a value as its JSON text.
CachedJson = JSON().with_variant(JsonText(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both engines (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is UTC:  # psycopg2's, when the session's time zone is UTC
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


E = TypeVar("E", bound=StrEnum)


class EnumText(TypeDecorator[E]):
    """A `contracts.states` StrEnum in a VARCHAR column, read back as members.

    Binding is plain text (a filter with an unknown value simply matches nothing; the column's
    length is still the database's to enforce); a stored value outside the vocabulary is read
    back as text rather than failing the query."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return _members(self.enum).get(value, value)


@cache
def _members(enum: type[StrEnum]) -> dict[str, StrEnum]:
    """A vocabulary's members by value: what `enum(value)` finds, a tenth of its cost (a
    report reads thousands of findings' statuses)."""
    return {member.value: member for member in enum}


def utcnow() -> datetime:
    return datetime.now(UTC)
