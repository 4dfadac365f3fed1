"""Recognise and mask secrets: in variable names, in URIs and in free text.

Every place that prints configuration, logs an event or writes an error runs
values through here, so a password never reaches stdout, a notebook or an
artifact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

_SECRET_SUFFIXES = ("_TOKEN", "_PASSWORD", "_PASSWD", "_SECRET", "_KEY", "_CREDENTIALS", "_CREDENTIAL")
_SECRET_WORDS = re.compile(
    r"(token|secret|password|passwd|credential|(^|_)key($|_)|apikey|api_key)", re.IGNORECASE
)
_URI_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)(?P<password>[^@\s]+)(?P<tail>@)")


def is_secret_name(name: str) -> bool:
    """True when an environment variable or parameter name looks like it holds a secret."""
    upper = name.upper()
    return upper.endswith(_SECRET_SUFFIXES) or bool(_SECRET_WORDS.search(name))


def mask_uri(uri: str) -> str:
    """Replace the password of ``scheme://user:password@host`` with ``***``."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return _URI_PASSWORD.sub(rf"\g<head>{MASK}\g<tail>", uri)
    if parts.password is None:
        return uri
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:{MASK}@{host}", parts.path, parts.query, parts.fragment))


def mask_value(name: str, value: object) -> object:
    """Mask ``value`` when ``name`` is secret-looking, and any password inside a URI value."""
    if value is None:
        return None
    if is_secret_name(name):
        return MASK
    if isinstance(value, str):
        return mask_uri(value) if "://" in value else value
    return value


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask URI passwords and every given secret value inside free text."""
    masked = _URI_PASSWORD.sub(rf"\g<head>{MASK}\g<tail>", text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            masked = masked.replace(secret, MASK)
    return masked


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Return the values of secret-looking variables and URI passwords, for :func:`mask_text`."""
    values = [v for k, v in environ.items() if is_secret_name(k) and v]
    for value in environ.values():
        if "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                values.append(password)
    return values
