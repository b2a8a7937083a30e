"""CLI configuration precedence: file < environment < flags, with errors naming the setting."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from cli.config import ConfigProblem, default_config_path, resolve
from cli.output import DURATION


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        'server = "https://file.example/"\nkey = "~/file.key"\nkey_id = "file"\ntimeout = 5\n'
    )
    return path


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = _file(tmp_path)
    from_file = resolve(environ={"HOME": str(tmp_path)}, config_path=str(path))
    assert from_file.server == "https://file.example" and from_file.key_id == "file"
    assert from_file.key_path == Path("~/file.key").expanduser() and from_file.timeout == 5
    env = {
        "K8SMON_CONFIG": str(path),
        "K8SMON_SERVER": "https://env.example",
        "K8SMON_ADMIN_KEY_ID": "env",
    }
    from_env = resolve(environ=env)
    assert (from_env.server, from_env.key_id) == ("https://env.example", "env")
    from_flags = resolve(environ=env, server="http://flag.example:8000", key_id="flag")
    assert (from_flags.server, from_flags.key_id) == ("http://flag.example:8000", "flag")


def test_default_location_and_problems(tmp_path: Path) -> None:
    assert default_config_path({"HOME": "/home/a"}) == Path("/home/a/.config/k8smon/config.toml")
    assert default_config_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/k8smon/config.toml")
    with pytest.raises(ConfigProblem, match="key_id is not set: pass --admin-key-id"):
        resolve(environ={"HOME": str(tmp_path)}, server="https://s", key="k")
    with pytest.raises(ConfigProblem, match="http:// or https://"):
        resolve(environ={"HOME": str(tmp_path)}, server="ftp://s", key="k", key_id="i")
    broken = tmp_path / "broken.toml"
    broken.write_text("server = ")
    with pytest.raises(ConfigProblem, match=r"broken\.toml"):
        resolve(environ={}, config_path=str(broken))


def test_durations() -> None:
    assert DURATION.convert("90s", None, None) == 90
    assert DURATION.convert("15m", None, None) == 900
    assert DURATION.convert("2h", None, None) == 7200
    assert DURATION.convert("30d", None, None) == 30 * 86400
    assert DURATION.convert("45", None, None) == 45
    for bad in ("soon", "-5m", "0"):
        with pytest.raises(click.BadParameter):
            DURATION.convert(bad, None, None)
