"""Secret-handling rules (KM-4xx): Secrets in environment variables (CIS 5.4.1) and literal
credentials in container env, command lines and ConfigMaps.

Literal-secret detection combines two signals and never echoes what it found:

- well-known credential formats anywhere (PEM private keys, AWS access key ids, GitHub/GitLab/
  Slack/npm/Stripe tokens, Google API keys, JSON Web Tokens, URLs with an embedded password);
- a credential-like *name* (PASSWORD, SECRET, TOKEN, API_KEY, ...) holding a literal value, or a
  weaker key-like name (KEY, AUTH, CREDENTIALS, SALT...) holding a long high-entropy value.

Names ending in FILE, PATH, NAME, URL, TTL, ... describe a secret rather than hold one, and
references (`$(VAR)`, `${VAR}`, `{{ .Values.x }}`), paths, booleans, small numbers and
placeholders are not literals, so `DB_PASSWORD_FILE=/run/secrets/db` or
`TOKEN_TTL=3600` are not reported.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from contracts.severity import Severity
from rules.model import Violation, rule
from rules.view import POD_KINDS, ContainerView, ObjectView, is_map

CATEGORY = "secrets"
SECRETS_DOC = "https://kubernetes.io/docs/concepts/configuration/secret/"
GOOD_PRACTICES = "https://kubernetes.io/docs/concepts/security/secrets-good-practices/"
NSA = "NSA/CISA Kubernetes Hardening Guidance v1.2, Secrets"

# Well-known credential formats: (label, literals, pattern). A pattern runs only when one of
# its literals occurs in the text (a cheap substring test). Labels go into messages; matches
# never do.
TOKEN_FORMATS: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = (
    (
        "a private key (PEM block)",
        ("PRIVATE KEY",),
        re.compile(
            r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
        ),
    ),
    (
        "an AWS access key id",
        ("AKIA", "ASIA", "ABIA", "ACCA"),
        re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])"),
    ),
    (
        "a GitHub token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        re.compile(
            r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,247})"
            r"(?![A-Za-z0-9_])"
        ),
    ),
    ("a GitLab token", ("glpat-",), re.compile(r"(?<![A-Za-z0-9_])glpat-[A-Za-z0-9_-]{20,}")),
    ("a Slack token", ("xox",), re.compile(r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}")),
    (
        "a Slack webhook URL",
        ("hooks.slack.com",),
        re.compile(
            r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+"
        ),
    ),
    (
        "a Google API key",
        ("AIza",),
        re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])"),
    ),
    (
        "a Stripe live key",
        ("_live_",),
        re.compile(r"(?<![A-Za-z0-9_])(?:sk|rk)_live_[0-9A-Za-z]{24,}"),
    ),
    (
        "an npm token",
        ("npm_",),
        re.compile(r"(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9_])"),
    ),
    (
        "a JSON Web Token",
        ("eyJ",),
        re.compile(
            r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}"
        ),
    ),
    (
        "a URL with an embedded password",
        ("@",),
        re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]+:(?!\$\(|\$\{|\{\{|<|\*+@)[^\s/@]+@"),
    ),
)
# Any literal of any format: one C-level search rules out most values at once.
_TRIGGER = re.compile("|".join(re.escape(lit) for _, lits, _ in TOKEN_FORMATS for lit in lits))
# Words a credential-like name contains (lower case), to skip lines that cannot qualify.
_HINTS = ("pass", "secret", "token", "key", "auth", "cred", "salt", "pwd", "signature", "hmac")

_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_STRONG_WORDS = frozenset(
    {
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "SECRET",
        "TOKEN",
        "APIKEY",
        "PRIVATEKEY",
        "SECRETKEY",
        "ACCESSKEY",
    }
)
_STRONG_PAIRS = frozenset(
    {
        ("API", "KEY"),
        ("PRIVATE", "KEY"),
        ("SECRET", "KEY"),
        ("ACCESS", "KEY"),
        ("CLIENT", "SECRET"),
        ("AUTH", "TOKEN"),
    }
)
_WEAK_WORDS = frozenset(
    {
        "KEY",
        "AUTH",
        "CREDENTIAL",
        "CREDENTIALS",
        "CRED",
        "CREDS",
        "SALT",
        "PASS",
        "PWD",
        "SIGNATURE",
        "HMAC",
    }
)
# A last word that makes the name describe a secret rather than hold one.
_DESCRIPTIVE_SUFFIXES = frozenset(
    {
        "FILE",
        "FILES",
        "PATH",
        "DIR",
        "DIRECTORY",
        "NAME",
        "NAMES",
        "REF",
        "TTL",
        "EXPIRY",
        "EXPIRES",
        "EXPIRATION",
        "LIFETIME",
        "LENGTH",
        "LEN",
        "TIMEOUT",
        "ENABLED",
        "ENABLE",
        "DISABLED",
        "DISABLE",
        "REQUIRED",
        "HEADER",
        "TYPE",
        "URL",
        "URI",
        "ENDPOINT",
        "HOST",
        "PORT",
        "MIN",
        "MAX",
        "COUNT",
        "SIZE",
        "LIMIT",
        "RETRIES",
        "POLICY",
        "MODE",
        "VERSION",
        "AUDIENCE",
        "ISSUER",
        "SCOPE",
        "SCOPES",
        "PROVIDER",
        "SOURCE",
        "LOCATION",
        "MOUNT",
        "FORMAT",
        "ALGORITHM",
        "ALG",
        "LABEL",
        "PREFIX",
        "KIND",
        "SECONDS",
        "INTERVAL",
        "USER",
        "USERNAME",
        "LOGIN",
        "ID",
        "NAMESPACE",
        "KEYS",
        "FIELD",
        "PARAM",
        "STORE",
        "BACKEND",
        "ROTATION",
        "REFRESH",
        "LOOKUP",
        "CACHE",
    }
)
_NON_VALUES = frozenset(
    {
        "",
        "true",
        "false",
        "yes",
        "no",
        "on",
        "off",
        "none",
        "null",
        "nil",
        "~",
        "undefined",
        "redacted",
        "placeholder",
        "-",
        "n/a",
        "|",
        "|-",
        ">",
        ">-",
        "{",
        "[",
        "{}",
        "[]",
        "''",
        '""',
    }
)
_PLACEHOLDER = re.compile(
    r"""^(?:\$\([^)]*\)|\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\{\{.*\}\}|<[^<>]*>|%\([^)]*\)s
        |%[A-Za-z_]+%|\#\{[^}]*\}|\*+|x{3,}|X{3,}|\.{3,})$""",
    re.VERBOSE | re.DOTALL,
)
_PATH_LIKE = re.compile(r"^(?:/|\./|\.\./|~/)\S*$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S*$")
_SMALL_INT = re.compile(r"^[0-9]{1,5}$")
_RESOURCE_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)+$")


def name_words(name: str) -> list[str]:
    """`dbPassword_FILE` -> ["DB", "PASSWORD", "FILE"]."""
    return [w.upper() for w in _SPLIT.split(name) if w]


def name_strength(name: str) -> str | None:
    """ "strong", "weak" or None: how much a variable or key name suggests a secret."""
    words = name_words(name)
    if not words or words[-1] in _DESCRIPTIVE_SUFFIXES:
        return None
    if any(w in _STRONG_WORDS for w in words):
        return "strong"
    if any(pair in _STRONG_PAIRS for pair in itertools.pairwise(words)):
        return "strong"
    if any(w in _WEAK_WORDS for w in words):
        return "weak"
    return None


def is_literal(value: str) -> bool:
    """Whether a value is a literal that could be a credential (not a reference, path...)."""
    text = value.strip()
    if text.lower() in _NON_VALUES:
        return False
    if _PLACEHOLDER.match(text) or _PATH_LIKE.match(text) or _SMALL_INT.match(text):
        return False
    return not _URL.match(text)  # URLs with credentials are caught by TOKEN_FORMATS


def shannon_entropy(text: str) -> float:
    """Bits per character."""
    if not text:
        return 0.0
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in Counter(text).values())


def looks_random(value: str) -> bool:
    """A long, space-free, high-entropy string mixing character classes (keys, tokens)."""
    text = value.strip()
    if len(text) < 16 or any(ch.isspace() for ch in text):
        return False
    classes = sum(
        (
            any(ch.islower() for ch in text),
            any(ch.isupper() for ch in text),
            any(ch.isdigit() for ch in text),
            any(not ch.isalnum() for ch in text),
        )
    )
    return classes >= 2 and shannon_entropy(text) >= 3.0


def known_format(value: str) -> str | None:
    """The label of the first well-known credential format found in `value`."""
    if _TRIGGER.search(value) is None:
        return None
    for label, literals, pattern in TOKEN_FORMATS:
        if any(literal in value for literal in literals) and pattern.search(value):
            return label
    return None


# Names and values up to this long are classified once per process (`_classify_memo` keeps
# the answers): the same variables (`LOG_LEVEL=info`) recur in every workload of a cluster.
# ConfigMap entries as short are scanned once per process too (`_scan_text_memo`).
CLASSIFY_MEMO_CHARS = 256


def classify(name: str, value: Any) -> str | None:
    """Why (name, value) looks like a literal secret, as message text, or None.

    The text never contains the value.
    """
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    text = str(value)
    if len(text) <= CLASSIFY_MEMO_CHARS and len(name) <= CLASSIFY_MEMO_CHARS:
        return _classify_memo(name, text)
    return _classify_text(name, text)


def _classify_text(name: str, text: str) -> str | None:
    """`classify` of a value as text (a pure function of its arguments)."""
    label = known_format(text)
    if label:
        return f"contains {label}"
    strength = name_strength(name)
    if strength is None or not is_literal(text):
        return None
    why = None
    if strength == "strong":
        words = set(name_words(name))
        names_a_secret = (
            "SECRET" in words
            and not {"PASSWORD", "TOKEN", "KEY"} & words
            and (_RESOURCE_NAME.match(text.strip()) is not None)
        )
        # DB_SECRET=postgres-credentials names a Secret object rather than holding one.
        if not names_a_secret:
            why = "has a credential-like name and a literal value"
    elif looks_random(text):
        why = "has a key-like name and a high-entropy literal value"
    return why


_classify_memo = functools.lru_cache(maxsize=4096)(_classify_text)


def _items(value: Any) -> list[Any]:
    """`value` when it is a list (a container's `env` or `envFrom`), else an empty list."""
    return value if isinstance(value, list) else []


@rule(
    id="KM-401",
    title="Secret exposed through environment variables",
    severity=Severity.LOW,
    category=CATEGORY,
    cis=("5.4.1",),
    references=(GOOD_PRACTICES, NSA),
    remediation="Mount the Secret as a volume (read-only files) and have the application "
    "read the file.",
    kinds=POD_KINDS,
)
def secret_in_env(obj: ObjectView) -> Iterator[Violation]:
    """Flags containers that load Secrets into environment variables.

    ## What it does
    Reports each `env[].valueFrom.secretKeyRef` and each `envFrom[].secretRef` of every
    container, init container and ephemeral container. References to ConfigMaps
    (`configMapKeyRef`, `configMapRef`) and to fields or resources are not reported.

    ## Why is this bad?
    Environment variables are inherited by every child process, printed by crash handlers
    and debug endpoints, and copied into logs and error reports. Files from a Secret volume
    can be permission-restricted, are updated when the Secret rotates, and are not passed on.

    ## Example
    ```yaml
    env:
      - name: DB_PASSWORD
        valueFrom:
          secretKeyRef: {name: db, key: password}
    ```

    ## Use instead
    ```yaml
    volumeMounts:
      - {name: db, mountPath: /run/secrets/db, readOnly: true}
    # ...
    volumes:
      - name: db
        secret: {secretName: db, defaultMode: 0400}
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.4.1
    """
    assert obj.workload is not None
    for c in obj.workload.containers:
        for index, item in enumerate(_items(c.raw.get("env"))):
            if not is_map(item):
                continue
            value_from = item.get("valueFrom")
            ref = value_from.get("secretKeyRef") if is_map(value_from) else None
            if is_map(ref):
                yield Violation(
                    f"container {c.name!r} of {obj.kind} {obj.name} reads key "
                    f"{ref.get('key')!r} of Secret {ref.get('name')!r} into env var "
                    f"{item.get('name')!r}; mount the Secret as a file instead",
                    path=f"{c.path}.env[{index}].valueFrom.secretKeyRef",
                    container=c.name,
                )
        for index, item in enumerate(_items(c.raw.get("envFrom"))):
            if not is_map(item):
                continue
            ref = item.get("secretRef")
            if is_map(ref):
                yield Violation(
                    f"container {c.name!r} of {obj.kind} {obj.name} loads every key of "
                    f"Secret {ref.get('name')!r} into its environment; mount the Secret as "
                    "files instead",
                    path=f"{c.path}.envFrom[{index}].secretRef",
                    container=c.name,
                )


@rule(
    id="KM-402",
    title="Literal credential in a container environment variable",
    severity=Severity.HIGH,
    category=CATEGORY,
    references=(GOOD_PRACTICES, NSA),
    remediation="Move the value into a Secret (or an external secret store), rotate it, and "
    "mount it as a file.",
    kinds=POD_KINDS,
)
def literal_secret_in_env(obj: ObjectView) -> Iterator[Violation]:
    """Flags credentials written literally into a container's `env`.

    ## What it does
    Reports `env[].value` entries that contain a well-known credential format (private key,
    AWS access key id, GitHub/GitLab/Slack/npm/Stripe token, Google API key, JSON Web Token,
    URL with a password), that have a credential-like name (`*PASSWORD*`, `*SECRET*`,
    `*TOKEN*`, `*API_KEY*`...) and a literal value, or a key-like name (`*KEY*`, `*AUTH*`...)
    and a long high-entropy value. References (`$(VAR)`), paths, booleans, small numbers and
    names that describe rather than hold a secret (`*_FILE`, `*_PATH`, `*_TTL`...) are not
    reported. The message names the variable, never the value.

    ## Why is this bad?
    Pod specs are readable by everyone with `get` on the workload, are stored unencrypted in
    etcd, in Git, in Helm release history and in CI logs. A credential there is leaked.

    ## Example
    ```yaml
    env:
      - name: STRIPE_API_KEY
        value: sk_live_...
    ```

    ## Use instead
    ```yaml
    volumeMounts:
      - {name: stripe, mountPath: /run/secrets/stripe, readOnly: true}
    ```

    ## References
    - https://kubernetes.io/docs/concepts/security/secrets-good-practices/
    """
    assert obj.workload is not None
    for c in obj.workload.containers:
        for index, item in enumerate(_items(c.raw.get("env"))):
            if not is_map(item):
                continue
            name = str(item.get("name") or "")
            why = classify(name, item.get("value"))
            if why:
                yield Violation(
                    f"env var {name!r} of container {c.name!r} in {obj.kind} {obj.name} {why} "
                    "(value not shown); move it into a Secret and rotate it",
                    path=f"{c.path}.env[{index}].value",
                    container=c.name,
                )


_FLAG = re.compile(r"^--?([A-Za-z][A-Za-z0-9_.-]*)(?:=(.*))?$", re.DOTALL)


def _command_line(c: ContainerView) -> Iterator[tuple[str, int, str, str]]:
    """(field, index, flag name or "", value) for `--flag=value`, `--flag value` and bare
    arguments of `command` and `args`."""
    for field in ("command", "args"):
        items = c.raw.get(field)
        if not isinstance(items, list):
            continue
        texts = [str(item) for item in items]
        index = 0
        while index < len(texts):
            match = _FLAG.match(texts[index])
            if match and match.group(2) is not None:
                yield field, index, match.group(1), match.group(2)
            elif match and index + 1 < len(texts) and not texts[index + 1].startswith("-"):
                index += 1
                yield field, index, match.group(1), texts[index]
            else:
                yield field, index, "", texts[index]
            index += 1


@rule(
    id="KM-403",
    title="Literal credential on a container command line",
    severity=Severity.HIGH,
    category=CATEGORY,
    references=(GOOD_PRACTICES,),
    remediation="Pass the credential through a mounted Secret file (e.g. `--password-file`) "
    "and rotate it.",
    kinds=POD_KINDS,
)
def literal_secret_in_args(obj: ObjectView) -> Iterator[Violation]:
    """Flags credentials written literally into a container's `command` or `args`.

    ## What it does
    Reports `--password=...`, `--token ...` and similar flags with a credential-like name and
    a literal value, and any argument containing a well-known credential format. The
    message names the flag, never the value.

    ## Why is this bad?
    Command lines are part of the pod spec (readable by anyone who can read the workload,
    stored in Git and etcd) and visible to every process on the node in `/proc/*/cmdline`.

    ## Example
    ```yaml
    args: ["--db-password=hunter2"]
    ```

    ## Use instead
    ```yaml
    args: ["--db-password-file=/run/secrets/db/password"]
    ```

    ## References
    - https://kubernetes.io/docs/concepts/security/secrets-good-practices/
    """
    assert obj.workload is not None
    for c in obj.workload.containers:
        for field, index, flag, value in _command_line(c):
            why = (
                classify(flag, value)
                if flag
                else (f"contains {known_format(value)}" if known_format(value) else None)
            )
            if why:
                what = f"flag {flag!r}" if flag else "an argument"
                yield Violation(
                    f"{what} in {field}[{index}] of container {c.name!r} in {obj.kind} "
                    f"{obj.name} {why} (value not shown); read it from a mounted Secret",
                    path=c.field_path(field, index),
                    container=c.name,
                )


_ASSIGNMENT = re.compile(
    r"""^\s*(?:export\s+)?["']?(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)["']?\s*[:=]\s*(?P<value>.*?)\s*$"""
)
_INLINE_COMMENT = re.compile(r"\s+[#;].*$")


def _clean_value(raw: str) -> str:
    value = _INLINE_COMMENT.sub("", raw).rstrip(",").strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return value


def _data_path(key: str) -> str:
    return f"data.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f'data["{key}"]'


def scan_text(key: str, text: str) -> tuple[str, int | None] | None:
    """Why a ConfigMap entry looks like it holds a credential, and on which line (1-based)."""
    if len(text) <= CLASSIFY_MEMO_CHARS and len(key) <= CLASSIFY_MEMO_CHARS:
        return _scan_text_memo(key, text)  # short entries recur (the same chart's ConfigMap)
    return _scan_text(key, text)


def _scan_text(key: str, text: str) -> tuple[str, int | None] | None:
    """`scan_text` (a pure function of its arguments)."""
    label = known_format(text)
    if label:
        first = next((n for n, line in enumerate(text.splitlines(), 1) if known_format(line)), None)
        return f"contains {label}", first
    if "\n" not in text.strip():
        why = classify(key, text)
        return (why, None) if why else None
    lower = text.lower()
    if not any(hint in lower for hint in _HINTS):
        return None
    for number, line in enumerate(text.splitlines(), 1):
        low = line.lower()
        if not any(hint in low for hint in _HINTS):
            continue
        match = _ASSIGNMENT.match(line)
        if not match:
            continue
        inner = match.group("key")
        why = classify(inner.rsplit(".", 1)[-1], _clean_value(match.group("value")))
        if why:
            return f"sets {inner!r}, which {why}", number
    return None


_scan_text_memo = functools.lru_cache(maxsize=4096)(_scan_text)


@rule(
    id="KM-404",
    title="Literal credential in a ConfigMap",
    severity=Severity.HIGH,
    category=CATEGORY,
    references=(SECRETS_DOC, GOOD_PRACTICES, NSA),
    remediation="Move the credential into a Secret (or an external secret store), rotate it, "
    "and reference it from the configuration by file path or environment.",
    kinds=("ConfigMap",),
)
def literal_secret_in_configmap(obj: ObjectView) -> Iterator[Violation]:
    """Flags ConfigMap entries that hold credentials.

    ## What it does
    Checks every `data` entry: a single-line value is judged with its key as the name (as
    for env vars); a multi-line value (a properties, INI, dotenv, YAML or JSON file) is read
    line by line for `name = value` / `name: value` assignments whose name is
    credential-like and whose value is a literal rather than a `${PLACEHOLDER}`. Well-known
    credential formats are found anywhere. Messages name the key and line, never the value.

    ## Why is this bad?
    ConfigMaps are meant for non-confidential data: they are readable by roles that cannot
    read Secrets (the built-in `view` role among them), are never encrypted at rest, and
    are printed freely by tooling.

    ## Example
    ```yaml
    kind: ConfigMap
    data:
      application.properties: |
        spring.datasource.password=s3cr3t-Pa55
    ```

    ## Use instead
    ```yaml
    kind: ConfigMap
    data:
      application.properties: |
        spring.datasource.password=${DB_PASSWORD}
    ```

    ## References
    - https://kubernetes.io/docs/concepts/configuration/configmap/
    """
    data = obj.manifest.get("data")
    if not is_map(data):
        return
    for key, value in data.items():
        if not isinstance(value, str):
            continue
        found = scan_text(str(key), value)
        if found:
            why, line = found
            where = f" (line {line})" if line else ""
            yield Violation(
                f"ConfigMap {obj.name} key {key!r}{where} {why} (value not shown); move it "
                "into a Secret and rotate it",
                path=_data_path(str(key)),
            )


@rule(
    id="KM-405",
    title="Long-lived service account token Secret",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    references=("https://kubernetes.io/docs/concepts/security/service-accounts/#get-a-token", NSA),
    remediation="Delete the Secret and use short-lived tokens: the projected token volume "
    "for pods, `kubectl create token` (TokenRequest) for clients.",
    kinds=("Secret",),
)
def legacy_sa_token(obj: ObjectView) -> Iterator[Violation]:
    """Flags Secrets of type `kubernetes.io/service-account-token`.

    ## What it does
    Reports every Secret whose `type` is `kubernetes.io/service-account-token`, naming the
    service account from the `kubernetes.io/service-account.name` annotation.

    ## Why is this bad?
    The token controller fills such a Secret with a token that never expires and is not
    bound to any pod: whoever reads the Secret, or finds the token in a log or a kubeconfig,
    acts as the service account until the Secret is deleted. Since Kubernetes 1.24 these
    Secrets are no longer created automatically; the ones that exist were created on
    purpose or are left over.

    ## Example
    ```yaml
    apiVersion: v1
    kind: Secret
    type: kubernetes.io/service-account-token
    metadata:
      name: ci-token
      annotations:
        kubernetes.io/service-account.name: ci
    ```

    ## Use instead
    ```sh
    kubectl create token ci --duration=1h
    ```

    ## References
    - https://kubernetes.io/docs/concepts/security/service-accounts/
    """
    if obj.manifest.get("type") == "kubernetes.io/service-account-token":
        account = obj.annotations.get("kubernetes.io/service-account.name") or "?"
        yield Violation(
            f"Secret {obj.name} holds a non-expiring token for ServiceAccount {account}; "
            "delete it and use short-lived tokens (TokenRequest, projected volumes)",
            path="type",
        )
