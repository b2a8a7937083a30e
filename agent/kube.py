"""Raw-JSON access to the Kubernetes API through the official client (no model deserialisation)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from agent import __version__
from agent.backoff import parse_retry_after

USER_AGENT = f"k8s-monitor-agent/{__version__}"
RETRYABLE_STATUSES = frozenset({0, 429, 500, 502, 503, 504})


class KubeError(Exception):
    """A request to the API server failed: HTTP status (0 for network errors) and reason."""

    def __init__(
        self, status: int, reason: str, message: str = "", *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


class KubeApi(Protocol):
    """What the collector and key store need from the API server."""

    def get(self, path: str, *, query: list[tuple[str, str]] | None = None) -> dict[str, Any]: ...

    def send(self, method: str, path: str, *, body: dict[str, Any]) -> dict[str, Any]: ...


class KubeClient:
    """KubeApi over `kubernetes.client.ApiClient`, reading bodies as raw bytes and parsing JSON.

    A GET refused with 429 (API priority and fairness), 5xx or a network error is tried again
    up to `attempts` times, waiting for Retry-After (at most `max_wait_s`) or a short backoff.
    """

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        *,
        timeout_s: float = 30.0,
        attempts: int = 3,
        max_wait_s: float = 10.0,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self._api = api_client
        self._timeout = timeout_s
        self._attempts = attempts
        self._max_wait = max_wait_s
        self._sleep = sleep

    @classmethod
    def connect(
        cls,
        *,
        kubeconfig: str | None,
        timeout_s: float,
        sleep: Callable[[float], object] = time.sleep,
    ) -> KubeClient:
        """In-cluster configuration inside a Pod, else the given (or default) kubeconfig."""
        configuration = k8s_client.Configuration()
        if kubeconfig is None:
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
            except k8s_config.ConfigException:
                k8s_config.load_kube_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        # Retries on statuses are ours (capped Retry-After, injectable sleep); urllib3 keeps one
        # immediate retry for a connection that dropped while idle, and never sleeps.
        configuration.retries = urllib3.Retry(
            total=1, read=0, redirect=0, status=0, respect_retry_after_header=False
        )
        api_client = k8s_client.ApiClient(configuration)
        api_client.user_agent = USER_AGENT  # how the agent shows up in the API server's audit log
        return cls(api_client, timeout_s=timeout_s, sleep=sleep)

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    def get(self, path: str, *, query: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        attempt = 1
        while True:
            try:
                return self._request("GET", path, query=query, body=None)
            except KubeError as exc:
                if exc.status not in RETRYABLE_STATUSES or attempt >= self._attempts:
                    raise
                self._sleep(min(exc.retry_after or 0.5 * 2**attempt, self._max_wait))
                attempt += 1

    def send(self, method: str, path: str, *, body: dict[str, Any]) -> dict[str, Any]:
        return self._request(method, path, query=None, body=body)

    def close(self) -> None:
        self._api.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None,
        body: dict[str, Any] | None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        serialized = self._api.param_serialize(
            method,
            path,
            query_params=list(query or []),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(*serialized, _request_timeout=self._timeout)
            raw = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(0, type(exc).__name__, str(exc)) from exc
        except k8s_client.ApiException as exc:
            raise KubeError(exc.status or 0, str(exc.reason or "error")) from exc
        if not 200 <= response.status < 300:
            reason, message = _status_reason(raw)
            raise KubeError(
                response.status,
                reason or str(response.reason),
                message,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise KubeError(response.status, "InvalidJSON", str(exc)) from exc
        if not isinstance(parsed, dict):
            raise KubeError(response.status, "InvalidJSON", "response is not a JSON object")
        return parsed


def _status_reason(raw: bytes) -> tuple[str, str]:
    """Reason and message of a `kind: Status` error body, when there is one."""
    try:
        status = json.loads(raw)
    except ValueError:
        return "", raw[:200].decode("utf-8", "replace")
    if isinstance(status, dict):
        return str(status.get("reason", "")), str(status.get("message", ""))[:500]
    return "", ""
