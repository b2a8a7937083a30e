"""Entry point: `python -m agent` runs the loop; `push --from-dir DIR` pushes files once."""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from kubernetes.config import ConfigException

from agent import __version__
from agent.backoff import Backoff, retry
from agent.config import AgentConfig, ConfigError
from agent.keys import KeyUnavailable, LoadedKey, load_or_create_key, log_public_key
from agent.kube import KubeClient
from agent.logs import configure_logging, log_event
from agent.loop import Agent
from agent.manifests import load_manifests, to_collection
from agent.signing import AgentKey, KeyFormatError, default_key_id
from agent.snapshot import encode, full_plan
from agent.transport import Sender
from contracts.stopping import stop_on_signals

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def _sleep(seconds: float) -> bool:
    """`retry`'s wait: sleep, then go on (never interrupted)."""
    time.sleep(seconds)
    return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agent", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="collect and push forever (the default)")
    commands.add_parser("once", help="collect and push one full snapshot, then exit")
    push = commands.add_parser("push", help="push manifests from files as one full snapshot")
    push.add_argument("--from-dir", required=True, type=Path, help="directory (or file) to read")
    push.add_argument("--server", help="server URL (default: K8SMON_AGENT_SERVER_URL)")
    push.add_argument("--cluster-id", help="cluster id (default: K8SMON_AGENT_CLUSTER_ID)")
    push.add_argument(
        "--key-file", help="Ed25519 private key file (default: K8SMON_AGENT_KEY_FILE)"
    )
    push.add_argument("--key-id", help="keyid to sign with (default: <cluster id>-<key hash>)")
    return parser


def main(argv: Sequence[str] | None = None, *, own_process: bool = False) -> int:
    """Run a command; `own_process` when this is the agent's process (it then owns logging)."""
    args = _parser().parse_args(argv)
    env = dict(os.environ)
    if args.command == "push":
        for flag, var in (
            ("server", "SERVER_URL"),
            ("cluster_id", "CLUSTER_ID"),
            ("key_file", "KEY_FILE"),
            ("key_id", "KEY_ID"),
        ):
            if getattr(args, flag):
                env[f"K8SMON_AGENT_{var}"] = getattr(args, flag)
    try:
        config = AgentConfig.from_env(env)
    except ConfigError as exc:
        configure_logging().error("config.invalid", extra={"fields": {"error": str(exc)}})
        return EXIT_CONFIG
    logger = configure_logging(level=config.log_level, whole_process=own_process)
    if args.command == "push":
        return _push_files(config, args.from_dir, logger)
    return _run(config, logger, once=args.command == "once")


def _sender(config: AgentConfig, loaded: LoadedKey) -> tuple[Sender, str]:
    key_id = config.key_id or default_key_id(config.cluster_id, loaded.key.public_key)
    sender = Sender(
        server_url=config.server_url,
        cluster_id=config.cluster_id,
        key=loaded.key,
        key_id=key_id,
        timeout_s=config.push_timeout_s,
        ca_file=config.ca_file,
    )
    return sender, key_id


def _run(config: AgentConfig, logger: logging.Logger, *, once: bool) -> int:
    stop = stop_on_signals(
        on_stop=lambda received: log_event(logger, "agent.stopping", signal=received.name)
    )
    try:
        kube = KubeClient.connect(
            kubeconfig=config.kubeconfig,
            timeout_s=config.request_timeout_s,
            sleep=stop.wait,  # a retry's wait ends at once on SIGTERM
        )
    except (ConfigException, OSError) as exc:
        log_event(logger, "kube.unconfigured", level=logging.ERROR, error=str(exc))
        return EXIT_CONFIG
    log_event(
        logger,
        "agent.starting",
        version=__version__,
        cluster_id=config.cluster_id,
        server_url=config.server_url,
        kube_host=kube.host,
    )
    try:
        loaded = load_or_create_key(
            key_file=config.key_file,
            kube=kube,
            namespace=config.namespace,
            secret_name=config.key_secret_name,
            generate=config.generate_key,
        )
    except KeyUnavailable as exc:
        log_event(logger, "key.unavailable", level=logging.ERROR, error=str(exc))
        return EXIT_CONFIG
    sender, key_id = _sender(config, loaded)
    log_public_key(logger, loaded, key_id=key_id, cluster_id=config.cluster_id)
    agent = Agent(
        config=config, kube=kube, sender=sender, key_fingerprint=loaded.key.fingerprint, stop=stop
    )
    if once:
        outcome = agent.push_cycle()
        agent.ping()
        if agent.last_push.get("result") == "incomplete":
            not_collected = ", ".join(agent.last_push.get("not_collected") or [])
            log_event(
                logger,
                "once.incomplete",
                level=logging.ERROR,
                message=f"nothing pushed: these types could not be collected: {not_collected}",
                not_collected=agent.last_push.get("not_collected"),
            )
            return EXIT_FAILED
        return EXIT_OK if outcome is not None and outcome.ok else EXIT_FAILED
    agent.run()
    return EXIT_OK


def _push_files(config: AgentConfig, root: Path, logger: logging.Logger) -> int:
    if not root.exists():
        log_event(logger, "push.files.missing", level=logging.ERROR, path=str(root))
        return EXIT_CONFIG
    key_path = Path(config.key_file)
    if not key_path.is_file():
        log_event(logger, "key.unavailable", level=logging.ERROR, key_file=str(key_path))
        return EXIT_CONFIG
    try:
        loaded = LoadedKey(AgentKey.load(key_path.read_bytes()), "file")
    except (OSError, KeyFormatError) as exc:
        log_event(logger, "key.unavailable", level=logging.ERROR, error=str(exc))
        return EXIT_CONFIG
    sender, _key_id = _sender(config, loaded)
    manifests = load_manifests(root)
    collection = to_collection(manifests)
    for error in manifests.errors:
        log_event(logger, "push.files.error", level=logging.WARNING, error=error)
    plan = full_plan(collection)
    collected_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = encode(plan, collected_at=collected_at, agent_version=__version__)
    outcome = retry(
        lambda: sender.snapshot(body),
        backoff=Backoff(initial_s=1.0, max_s=30.0),
        rng=random.Random(),  # noqa: S311 - jitter only
        wait=_sleep,
        deadline=time.monotonic() + 120.0,
    )
    log_event(
        logger,
        "push.files.done" if outcome.ok else "push.files.failed",
        level=logging.INFO if outcome.ok else logging.ERROR,
        objects=len(plan.packed_bodies),
        skipped_secrets=manifests.skipped_secrets,
        errors=len(manifests.errors),
        digest=plan.digest,
        **outcome.summary(),
    )
    return EXIT_OK if outcome.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(own_process=True))
