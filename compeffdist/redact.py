"""Keep credentials out of everything the project prints or writes: console, logs, manifests, report, accounting.

Three kinds of secret are masked with `***`:
- query parameters of URIs whose name says secret (`access_key`, `secret_key`, `session_token`, `token`,
  `password`, `X-Amz-Signature`, `sig`...), as pyarrow's S3/GCS/ABFS URIs and presigned URLs carry them;
- the password of `scheme://user:password@host`;
- credential environment variables (`AWS_SECRET_ACCESS_KEY`, `HF_TOKEN`, `RAY_AUTH_TOKEN`, any `*_TOKEN`,
  `*_SECRET`, `*_PASSWORD`, `*_API_KEY`...): written as `NAME=value` / `"NAME": "value"`, and the values such
  variables hold in this process's environment, wherever they appear.

Redaction is the safety net, not the way to pass credentials: on a cluster they come from instance roles or
Kubernetes Secrets (docs/cluster.md), never from URIs or runtime-env variables, which Ray shows in its job list.
"""

from __future__ import annotations

import os
import re
import sys
from types import TracebackType
from typing import Any

MASK = "***"
# A value shorter than this in the environment is not treated as a secret to hunt for in free text
# (tests set AWS_SECRET_ACCESS_KEY=testing; masking every "testing" would garble messages, not protect anything).
MIN_ENV_SECRET_CHARS = 8

# Environment-style names: a whole word ending in one of these (RAY_AUTH_TOKEN, not RAY_AUTH_TOKEN_PATH or max_tokens).
# Special tokens of tokenizers (eos_token, pad_token...) are vocabulary, not secrets.
_CREDENTIAL_NAME = re.compile(
    r"(?:^|(?<!BOS|EOS|PAD|UNK|SEP|CLS)(?<!MASK)_)(?:TOKEN|SECRET|PASSWORD|PASSWD|PWD|API_?KEY|ACCESS_KEY(?:_ID)?"
    r"|SECRET_(?:ACCESS_)?KEY|ACCOUNT_KEY|PRIVATE_KEY|CREDENTIALS?)$",
    re.IGNORECASE,
)
# NAME=value, NAME: value, "NAME": "value" (not `name:/path`, a mount spec); a value opening a mapping or list
# (`secret: {secretName: ...}`) is structure, not a secret.
_ASSIGNMENT = re.compile(
    r"\b([A-Za-z][A-Za-z0-9_]*)(\s*=\s*[\"']?|\s*:\s+[\"']?|[\"']\s*:\s*[\"']?)([^\s\"',;}&{\[][^\s\"',;}&]*)"
)
# URI query parameters: any name containing one of these words (presigned URLs, SAS tokens, pyarrow S3 options).
_SECRET_PARAMETER = re.compile(r"key|secret|token|passw|pwd|signature|sig$|credential", re.IGNORECASE)
_QUERY_PARAMETER = re.compile(r"([?&;])([A-Za-z0-9_.\-]+)=([^&#\s\"'<>]*)")
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@\"']+):([^/\s@\"']+)@")


def is_credential_name(name: str) -> bool:
    """True for names of credential variables or fields: HF_TOKEN, secret_key, AWS_ACCESS_KEY_ID, password."""
    return bool(_CREDENTIAL_NAME.search(name))


def _environment_secrets() -> list[str]:
    values = {v for k, v in os.environ.items() if is_credential_name(k) and len(v) >= MIN_ENV_SECRET_CHARS}
    return sorted(values, key=len, reverse=True)  # longest first: a secret containing another is masked whole


def redact_text(text: str) -> str:
    """The text with every credential it contains replaced by `***`."""
    for secret in _environment_secrets():
        text = text.replace(secret, MASK)
    text = _USERINFO.sub(rf"\1:{MASK}@", text)
    text = _QUERY_PARAMETER.sub(
        lambda m: f"{m[1]}{m[2]}={MASK}" if m[3] and _SECRET_PARAMETER.search(m[2]) else m[0], text
    )
    return _ASSIGNMENT.sub(lambda m: f"{m[1]}{m[2]}{MASK}" if is_credential_name(m[1]) else m[0], text)


def redact_data(value: Any) -> Any:
    """A copy of nested dicts/lists with credential-named fields masked and every string redacted."""
    if isinstance(value, dict):
        return {
            key: MASK if isinstance(key, str) and is_credential_name(key) and item else redact_data(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_data(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def install_excepthook() -> None:
    """Redact uncaught exceptions too: their messages often quote the URI or config value that failed."""
    original = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        import traceback

        sys.stderr.write(redact_text("".join(traceback.format_exception(kind, error, tb))))

    if getattr(original, "__name__", "") != "hook":  # once per process
        sys.excepthook = hook
