"""Recognise and mask secrets: in variable names, in URIs and in free text.

Every place that prints configuration, logs an event or writes an error runs
values through here, so a password never reaches stdout, a notebook or an
artifact. A process also *remembers* the secret values it learns
(:func:`remember_secrets`: the runner for its environment and for every value
a notebook read through ``secret()``, a kernel for its own); :func:`mask_text`
masks those everywhere, in plain, JSON-escaped and HTML-escaped form.
"""

from __future__ import annotations

import functools
import html
import json
import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
KEY_MASK = "masked"
MIN_SECRET_LENGTH = 4
"""Shorter values are not masked in free text (masking ``"1"`` everywhere would destroy the text)."""

_SECRET_SUFFIXES = (
    "_TOKEN",
    "_PASSWORD",
    "_PASSWD",
    "_PASS",
    "_SECRET",
    "_KEY",
    "_PRIVATE_KEY",
    "_CREDENTIALS",
    "_CREDENTIAL",
    "_DSN",
    "_WEBHOOK_URL",
)
_SECRET_WORDS = re.compile(
    r"(token|secret|password|passwd|credential|(^|_)key($|_)|apikey|api_key)", re.IGNORECASE
)
# Starts with the literal "://" so the engine skips ahead to candidates: linear on a 300 kB HTML
# page with an inline PNG, where a pattern starting at the scheme tries every letter (1000x slower).
_URI_PASSWORD = re.compile(r"(?P<head>://[^:/@\s]+:)(?P<password>[^@\s]+)(?P<tail>@)")
_remembered: set[str] = set()
_lock = threading.Lock()


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


@functools.lru_cache(maxsize=1024)
def secret_forms(secret: str) -> tuple[str, ...]:
    """``secret`` as it may appear in text: plain, JSON-escaped, HTML-escaped (longest first)."""
    forms = {secret, json.dumps(secret)[1:-1], html.escape(secret), html.escape(secret, quote=False)}
    return tuple(sorted(forms, key=len, reverse=True))


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask URI passwords, the given secret values and every remembered one inside free text."""
    masked = _URI_PASSWORD.sub(rf"\g<head>{MASK}\g<tail>", text)
    values = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH} | remembered_secrets()
    for secret in sorted(values, key=len, reverse=True):
        for form in secret_forms(secret):
            masked = masked.replace(form, MASK)
    return masked


def mask_key(key: str, secrets: Iterable[str] = ()) -> str:
    """Mask secrets in an MLflow key (param, tag or metric name): ``masked``, as keys cannot hold ``*``."""
    return mask_text(key, secrets).replace(MASK, KEY_MASK)


def mask_data(value: object, secrets: Iterable[str] = ()) -> object:
    """Mask every string inside ``value`` (JSON-like data: mappings, lists, strings, numbers)."""
    known = list(secrets)
    if isinstance(value, str):
        return mask_text(value, known)
    if isinstance(value, Mapping):
        return {mask_text(str(k), known): mask_data(v, known) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_data(v, known) for v in value]
    return value


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


def remember_secrets(values: Iterable[str]) -> None:
    """Mask ``values`` from now on in every :func:`mask_text` call of this process."""
    fresh = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH}
    with _lock:
        _remembered.update(fresh)


def remembered_secrets() -> frozenset[str]:
    """The secret values this process remembers."""
    with _lock:
        return frozenset(_remembered)


def forget_secrets() -> None:
    """Forget every remembered secret (tests start clean with it)."""
    with _lock:
        _remembered.clear()
