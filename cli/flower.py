"""`python -m cli.flower` (the Procfile's flower line): Flower on loopback, behind basic auth.

Reads FLOWER_ADDRESS (default 127.0.0.1), FLOWER_PORT (default 5555) and FLOWER_BASIC_AUTH
(`user:password`, comma-separated for several), then replaces itself with
`celery -A workers.celery_app:app flower --address=... --port=... --basic-auth=...`.
It refuses to start (exit 2) on a non-loopback address without basic auth: Flower can revoke
and re-run tasks, so it is never reachable from the network unauthenticated.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 5555
CELERY_APP = "workers.celery_app:app"


class FlowerRefused(ValueError):
    """The environment asks for an unsafe or invalid Flower."""


@dataclass(frozen=True, slots=True)
class FlowerOptions:
    address: str
    port: int
    basic_auth: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> FlowerOptions:
        address = environ.get("FLOWER_ADDRESS", "").strip() or DEFAULT_ADDRESS
        raw_port = environ.get("FLOWER_PORT", "").strip() or str(DEFAULT_PORT)
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise FlowerRefused(f"FLOWER_PORT must be a port number, not {raw_port!r}")
        auth = environ.get("FLOWER_BASIC_AUTH", "").strip()
        for pair in filter(None, auth.split(",")):
            user, _, password = pair.partition(":")
            if not user or not password:
                raise FlowerRefused("FLOWER_BASIC_AUTH must be user:password[,user:password]")
        if not auth and not is_loopback(address):
            raise FlowerRefused(
                f"refusing to serve Flower on {address} without FLOWER_BASIC_AUTH "
                "(set FLOWER_BASIC_AUTH=user:password, or FLOWER_ADDRESS=127.0.0.1)"
            )
        return cls(address=address, port=int(raw_port), basic_auth=auth)

    def argv(self, celery: str = "celery") -> list[str]:
        argv = [
            celery,
            "-A",
            CELERY_APP,
            "flower",
            f"--address={self.address}",
            f"--port={self.port}",
        ]
        if self.basic_auth:
            argv.append(f"--basic-auth={self.basic_auth}")
        return argv


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    del argv  # configured from the environment only, like the other Procfile lines
    try:
        options = FlowerOptions.from_env(os.environ)
    except FlowerRefused as problem:
        print(f"flower: {problem}", file=sys.stderr)
        return 2
    if not options.basic_auth:
        print(
            f"flower: no FLOWER_BASIC_AUTH; serving without authentication on {options.address}",
            file=sys.stderr,
        )
    celery = shutil.which("celery") or os.path.join(os.path.dirname(sys.executable), "celery")
    command = options.argv(celery)
    os.execv(command[0], command)  # noqa: S606 - our own fixed command line
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
