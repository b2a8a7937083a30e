"""Local accounts of the admin pages: scrypt password hashes, roles, sign-in checks.

Passwords are hashed with scrypt (hashlib, memory-hard) and a random 16-byte salt; the stored
form is `scrypt$n$r$p$salt_b64$hash_b64`, so the cost can be raised later without breaking
existing hashes. Verification runs in constant time and also when the user does not exist, so
timing does not reveal which usernames are registered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.errors import StoreError
from store.models import AdminUser

ACCOUNT_ROLES = ("viewer", "admin")
MIN_PASSWORD_LENGTH = 12
# scrypt cost: n=2**15, r=8, p=1 needs 32 MiB and ~50-100 ms per check (OWASP's baseline).
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_MAXMEM = 64 * 1024 * 1024


class AccountExists(StoreError):
    """An account with that username already exists."""


class AccountNotFound(StoreError):
    """No account with that username."""


@dataclass(frozen=True, slots=True)
class Account:
    """A signed-in identity: what the admin pages keep about the user."""

    username: str
    role: str
    session_version: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A salted scrypt hash of `password` in the self-describing stored form."""
    salt = secrets.token_bytes(16)
    derived = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32
    )
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(derived)}"


def check_password(stored: str, password: str) -> bool:
    """True when `password` matches the stored hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        derived = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=32,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(derived, base64.b64decode(expected))


def _equal_work(password: str) -> None:
    """Spend what a real check costs, so an unknown username answers as slowly as a known one."""
    hashlib.scrypt(
        password.encode("utf-8"),
        salt=bytes(16),
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=_MAXMEM,
        dklen=32,
    )


def validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")


def create_account(session: Session, username: str, *, password: str, role: str) -> AdminUser:
    """Create a local account; ValueError for a bad role/password, AccountExists on a clash."""
    username = username.strip()
    if not username:
        raise ValueError("the username may not be empty")
    if role not in ACCOUNT_ROLES:
        raise ValueError(f"role must be one of {', '.join(ACCOUNT_ROLES)}")
    validate_password(password)
    if session.scalar(select(AdminUser).where(AdminUser.username == username)) is not None:
        raise AccountExists(username)
    user = AdminUser(
        username=username, password_hash=hash_password(password), role=role, disabled=False
    )
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> Account | None:
    """The account when the username exists, is enabled and the password matches; else None."""
    user = session.scalar(select(AdminUser).where(AdminUser.username == username.strip()))
    if user is None:
        _equal_work(password)
        return None
    if not check_password(user.password_hash, password) or user.disabled:
        return None
    return _account(user)


def find_account(session: Session, username: str) -> Account | None:
    """The enabled account with that username (sessions re-check it on every request)."""
    user = session.scalar(select(AdminUser).where(AdminUser.username == username))
    if user is None or user.disabled:
        return None
    return _account(user)


def _account(user: AdminUser) -> Account:
    return Account(
        username=user.username, role=user.role, session_version=user.session_version or 0
    )


def _user(session: Session, username: str) -> AdminUser:
    user = session.scalar(select(AdminUser).where(AdminUser.username == username))
    if user is None:
        raise AccountNotFound(username)
    return user


def end_sessions(session: Session, username: str) -> None:
    """End every session of the account (its session version moves on)."""
    user = _user(session, username)
    user.session_version = (user.session_version or 0) + 1
    session.flush()


def set_password(session: Session, username: str, *, password: str) -> None:
    """A new password; the account's existing sessions end."""
    validate_password(password)
    user = _user(session, username)
    user.password_hash = hash_password(password)
    end_sessions(session, username)


def set_role(session: Session, username: str, *, role: str) -> None:
    """A new role; the account's existing sessions end (it signs in again as what it is)."""
    if role not in ACCOUNT_ROLES:
        raise ValueError(f"role must be one of {', '.join(ACCOUNT_ROLES)}")
    _user(session, username).role = role
    end_sessions(session, username)


def set_disabled(session: Session, username: str, *, disabled: bool) -> None:
    """Disable or enable; either way the account's existing sessions end."""
    _user(session, username).disabled = disabled
    end_sessions(session, username)


def list_accounts(session: Session) -> Sequence[AdminUser]:
    return session.scalars(select(AdminUser).order_by(AdminUser.username)).all()
