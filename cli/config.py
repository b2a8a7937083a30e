"""Where the admin CLI connects and with which key: config file, environment, flags.

Precedence, lowest to highest: `~/.config/k8smon/config.toml` (or `$XDG_CONFIG_HOME/k8smon/`,
or the file named by `--config` / `K8SMON_CONFIG`), then the environment (`K8SMON_SERVER`,
`K8SMON_ADMIN_KEY`, `K8SMON_ADMIN_KEY_ID`), then command-line flags (`--server`,
`--admin-key`, `--admin-key-id`). The file looks like::

    server = "https://k8smon.internal.example"
    key = "~/.config/k8smon/alice.key"     # PKCS#8 PEM of the admin key (k8smon keygen)
    key_id = "alice"                        # the key id registered on the server
    timeout = 30                            # seconds per request
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_CONFIG = "K8SMON_CONFIG"
ENV_SERVER = "K8SMON_SERVER"
ENV_KEY = "K8SMON_ADMIN_KEY"
ENV_KEY_ID = "K8SMON_ADMIN_KEY_ID"
DEFAULT_TIMEOUT = 30.0


class ConfigProblem(ValueError):
    """The CLI configuration is missing something or unreadable (message names the setting)."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    server: str
    key_path: Path
    key_id: str
    timeout: float = DEFAULT_TIMEOUT


def default_config_path(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "k8smon" / "config.toml"


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as problem:
        raise ConfigProblem(f"config file {path}: {problem}") from None


def resolve(
    *,
    environ: Mapping[str, str] | None = None,
    config_path: str | None = None,
    server: str | None = None,
    key: str | None = None,
    key_id: str | None = None,
) -> ClientConfig:
    """Merge file, environment and flags; ConfigProblem names whatever is missing."""
    env = os.environ if environ is None else environ
    explicit = config_path or env.get(ENV_CONFIG)
    path = Path(explicit).expanduser() if explicit else default_config_path(env)
    if explicit and not path.exists():
        raise ConfigProblem(f"config file {path} does not exist")
    values = read_config_file(path)
    merged = {
        "server": server or env.get(ENV_SERVER) or values.get("server"),
        "key": key or env.get(ENV_KEY) or values.get("key"),
        "key_id": key_id or env.get(ENV_KEY_ID) or values.get("key_id"),
    }
    hints = {
        "server": ("--server", ENV_SERVER),
        "key": ("--admin-key", ENV_KEY),
        "key_id": ("--admin-key-id", ENV_KEY_ID),
    }
    for name, value in merged.items():
        if not value or not isinstance(value, str):
            flag, variable = hints[name]
            raise ConfigProblem(
                f"{name} is not set: pass {flag}, set {variable}, or add `{name} = ...` to {path}"
            )
    server_url = str(merged["server"]).rstrip("/")
    if not server_url.startswith(("http://", "https://")):
        raise ConfigProblem(f"server must be an http:// or https:// URL, got {server_url!r}")
    try:
        timeout = float(values.get("timeout", DEFAULT_TIMEOUT))
    except (TypeError, ValueError):
        raise ConfigProblem(f"config file {path}: timeout must be a number") from None
    return ClientConfig(
        server=server_url,
        key_path=Path(str(merged["key"])).expanduser(),
        key_id=str(merged["key_id"]),
        timeout=timeout,
    )
