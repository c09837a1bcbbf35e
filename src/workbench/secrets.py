"""Secrets in parameters: database passwords never land in run records, notebooks or MLflow.

A source is often a database URL with a password (`postgresql://etl:s3cret@db/pos`). Whatever the
workbench records (run.json, executed notebooks, MLflow params and tags, the entity store's
watermark, error messages) goes through `redact`, which keeps the URL's other parts and replaces the
password with `***`, in the style of SQLAlchemy's `URL.render_as_string(hide_password=True)`:

    >>> redact_url("postgresql://etl:s3cret@db:5432/pos")
    'postgresql://etl:***@db:5432/pos'
    >>> redact({"source": "mysql+pymysql://u:p@h/d", "k": 10})
    {'source': 'mysql+pymysql://u:***@h/d', 'k': 10}

For extraction code (workbench.datasets): record `redact_url(source_url)` wherever the source is
written down (watermark, summaries, log lines), and open the connection with the real URL.

A parameter may also name an environment variable instead of holding the secret:
`source: ${ENV:POS_DB_URL}` in the YAML file or `-p 'source=${ENV:POS_DB_URL}'`; `resolve` returns
the variable's value (a clear error when it is unset). `workbench run` passes such values (and any
URL with a password given in plain text) to the notebooks through the environment, so the injected
parameters cell holds only the reference, never the password.
"""

from __future__ import annotations

import os
import re
from typing import Any

REDACTED = "***"

#: `scheme://user:password@host` in any text; the password runs to the last '@' before the host (an
#: unencoded '@' in a password is still hidden).
_URL_CREDENTIALS = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^\s/]*?)(?=@[^@\s/]*(?:[/?#\s'\"]|$))"
)
ENV_REFERENCE = re.compile(r"^\$\{ENV:(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}$")


class SecretError(ValueError):
    """A `${ENV:NAME}` reference whose variable is not set."""


def has_password(text: str) -> bool:
    """True where `text` holds a URL with a non-empty password."""
    return isinstance(text, str) and any(m.group("password") for m in _URL_CREDENTIALS.finditer(text))


def redact_url(url: str) -> str:
    """`url` with its password replaced by `***` (user, host, port, database and query kept)."""
    return _URL_CREDENTIALS.sub(lambda m: m.group("head") + (REDACTED if m.group("password") else ""), url)


def redact(value: Any) -> Any:
    """A copy of `value` (str, or dicts / lists / tuples of them, nested) with every URL password hidden."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    return value


def env_reference(value: Any) -> str | None:
    """The variable name of a `${ENV:NAME}` reference, else None."""
    match = ENV_REFERENCE.match(value.strip()) if isinstance(value, str) else None
    return match.group("name") if match else None


def resolve(value: Any, what: str = "parameter") -> Any:
    """The value a `${ENV:NAME}` reference points at (other values are returned as they are)."""
    name = env_reference(value)
    if name is None:
        return value
    if name not in os.environ:
        raise SecretError(f"{what} refers to the environment variable {name} (${{ENV:{name}}}), which is not set")
    return os.environ[name]
