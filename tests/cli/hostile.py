"""Agent-chosen text for the CLI's escaping tests: names with rich markup, links, terminal
escapes, a spreadsheet formula and a bidi override, pushed into prod-eu; and the real `k8smon`
executable to show them with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.telemetry import record_telemetry
from tests.support.manifests import config_map, deployment
from tests.web.fleet import privileged, push

if TYPE_CHECKING:
    from tests.cli.conftest import Operator

K8SMON = str(Path(sys.executable).with_name("k8smon"))

MARKUP_NAME = "web-[/oops]"
LINK_NAME = "[link=https://evil.example]open-me[/link]"
TITLE_ESCAPE = "\x1b]0;pwned\x07api"
CLEAR_SCREEN = "\x1b[2Jwipe"
FORMULA = '=HYPERLINK("https://evil.example","x")'
RTL = "abc\u202egpj.exe"


def k8smon(operator: Operator, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The installed `k8smon` command, stdout piped (not a terminal), as a script runs it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("K8SMON_SERVER", "K8SMON_ADMIN_KEY", "K8SMON_ADMIN_KEY_ID")
    }
    env["K8SMON_CONFIG"] = str(operator.config)
    return subprocess.run([K8SMON, *args], capture_output=True, env=env, timeout=120, check=False)


def _hostile(name: str, *, image: str) -> dict[str, Any]:
    body = privileged(deployment("placeholder", namespace="evil", image=image))
    body["metadata"]["name"] = name
    body["metadata"]["uid"] = f"uid-{abs(hash(name))}"
    return body


def push_hostile(operator: Operator) -> Operator:
    """prod-eu also holds objects whose names, images and telemetry an attacker chose."""
    objects = [
        _hostile(MARKUP_NAME, image="img/[/oops]:1"),
        _hostile(LINK_NAME, image="img/link:1"),
        _hostile(TITLE_ESCAPE, image="img/\x1b[2J:1"),
        _hostile(CLEAR_SCREEN, image="img/clear:1"),
        _hostile(FORMULA, image="-cmd|' /C calc'!A0"),
        _hostile(RTL, image="img/rtl:1"),
    ]
    with operator.fleet.sessions() as session:
        push(session, "prod-eu", [*objects, config_map("settings", namespace="shop")])
        record_telemetry(
            session,
            "prod-eu",
            payload={
                "agent_version": "[/oops]\x1b]0;agent\x07",
                "kubernetes_version": "[link=https://evil.example]v1[/link]",
                "platform": "\x1b[2J",
                "node_count": 1,
                "last_push": {"result": "failed", "detail": "[/oops]\x1b[2J", "at": "x"},
            },
        )
        session.commit()
    operator.fleet.scan("prod-eu")
    return operator
