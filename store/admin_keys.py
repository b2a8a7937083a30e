"""Admin keys: security engineers' Ed25519 keys and roles for the signed admin API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.errors import KeyExists, KeyNotFound
from store.models import AdminKey
from store.types import utcnow

ADMIN_ROLES = ("viewer", "admin")


def create_admin_key(
    session: Session, name: str, *, role: str, key_id: str, public_key: bytes
) -> AdminKey:
    if role not in ADMIN_ROLES:
        raise ValueError(f"role must be one of {', '.join(ADMIN_ROLES)}")
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    clash = session.scalar(
        select(AdminKey).where((AdminKey.key_id == key_id) | (AdminKey.name == name))
    )
    if clash is not None:
        raise KeyExists(key_id if clash.key_id == key_id else name)
    key = AdminKey(name=name, role=role, key_id=key_id, public_key=public_key)
    session.add(key)
    session.flush()
    return key


def find_admin_key(session: Session, key_id: str) -> AdminKey | None:
    return session.scalar(select(AdminKey).where(AdminKey.key_id == key_id))


def list_admin_keys(session: Session) -> Sequence[AdminKey]:
    return session.scalars(select(AdminKey).order_by(AdminKey.name)).all()


def revoke_admin_key(session: Session, key_id: str, *, at: datetime | None = None) -> AdminKey:
    key = find_admin_key(session, key_id)
    if key is None:
        raise KeyNotFound(key_id)
    key.revoked_at = key.revoked_at or at or utcnow()
    session.flush()
    return key
