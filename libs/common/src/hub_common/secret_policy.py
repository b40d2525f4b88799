"""What a production secret must look like, and the one check every settings class runs at start-up.

Outside development (`HUB_DEV_MODE=1`) a service refuses to start when a secret is empty, shorter than 32 bytes,
or looks like a placeholder (`change-me`, `secret`, `password`, `test`, `example`, ...), and when a URL that
must be https (webhook endpoints) is plain http. The check walks the whole settings tree, so a secret added
later is covered without anyone remembering to call it: every `SecretStr` is a secret, unless its field carries
one of the markers below. Error messages name the setting, never its value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_MODE_ENV = "HUB_DEV_MODE"
MIN_SECRET_BYTES = 32
_TRUE = {"1", "true", "yes", "on"}

# Whole words (split on anything not a letter or digit) that mark a value someone typed as a stand-in.
_PLACEHOLDER_WORDS = frozenset(
    {
        "changeme", "change", "secret", "password", "passwd", "pass", "test", "testing", "example", "sample",
        "placeholder", "dummy", "default", "demo", "todo", "fixme", "xxx", "replace", "insecure", "dev",
        "local", "admin", "foo", "bar", "qwerty", "letmein", "none", "null",
    }
)  # fmt: skip
# Anywhere in the value once separators are removed: long enough that a random value never contains them.
_PLACEHOLDER_PARTS = ("changeme", "password", "placeholder", "example", "secret", "replaceme", "notsecure")
_MIN_DISTINCT_CHARS = 8


def dev_mode(environ: Mapping[str, str] | None = None) -> bool:
    """True when `HUB_DEV_MODE` is set to 1/true/yes/on (the devstack, `make up` and the tests set it)."""
    value = (os.environ if environ is None else environ).get(DEV_MODE_ENV, "")
    return value.strip().lower() in _TRUE


def secret_problem(value: str) -> str | None:
    """Why `value` is unfit as a production secret, or None. Never includes the value itself."""
    if not value:
        return "is empty"
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    lowered = value.lower()
    words = set(re.split(r"[^a-z0-9]+", lowered))
    squashed = re.sub(r"[^a-z0-9]+", "", lowered)
    if words & _PLACEHOLDER_WORDS or any(part in squashed for part in _PLACEHOLDER_PARTS):
        return "looks like a placeholder"
    if len(set(value)) < _MIN_DISTINCT_CHARS:
        return "repeats too few characters to be random"
    return None


def https_problem(url: str) -> str | None:
    scheme = urlsplit(url).scheme.lower()
    return None if scheme == "https" else f"must be an https URL (got {scheme or 'no'} scheme)"


# Field markers (in `Annotated[...]`): how the policy treats a field that is not a plain secret.
@dataclass(frozen=True)
class CredentialUrl:
    """A URL (e.g. a database DSN) whose password part, when present, is the secret."""


@dataclass(frozen=True)
class OptionalSecret:
    """May be left empty (a feature that is then unavailable); when set it must be a strong secret."""


@dataclass(frozen=True)
class HttpsUrl:
    """A URL other parties' data travels to: https outside development."""


SUGGESTION = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'


def policy_problems(model: BaseModel) -> list[str]:
    """Every violation in `model` and the models, dicts and lists it holds, as `path: problem`."""
    return [f"{path} {problem}" for path, problem in _walk(model, "")]


def _walk(value: Any, path: str, markers: tuple[object, ...] = ()) -> Iterator[tuple[str, str]]:
    if isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            yield from _walk(getattr(value, name), f"{path}.{name}" if path else name, _markers(field))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}", markers)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]", markers)
    elif isinstance(value, SecretStr):
        yield from _check_secret(value.get_secret_value(), path, markers)
    elif isinstance(value, str) and any(isinstance(m, HttpsUrl) for m in markers):
        problem = https_problem(value)
        if problem:
            yield path, problem


def _check_secret(raw: str, path: str, markers: tuple[object, ...]) -> Iterator[tuple[str, str]]:
    if any(isinstance(m, CredentialUrl) for m in markers):
        password = urlsplit(raw).password
        # No password in the URL: authentication by other means (certificate, .pgpass, peer), nothing to judge.
        problem = secret_problem(password) if password is not None else None
        if problem:
            yield f"{path} (password)", problem
        return
    if not raw and any(isinstance(m, OptionalSecret) for m in markers):
        return
    problem = secret_problem(raw)
    if problem:
        yield path, problem


def _markers(field: FieldInfo) -> tuple[object, ...]:
    return tuple(field.metadata)


class SecuredSettings(BaseSettings):
    """Base of every service's settings class: runs the policy once the whole tree is validated.

    `dev_mode` comes from `HUB_DEV_MODE` (no service prefix: one switch for the whole stack).
    """

    model_config = SettingsConfigDict(populate_by_name=True)

    dev_mode: bool = Field(default=False, validation_alias=DEV_MODE_ENV)

    @field_validator("dev_mode", mode="before")
    @classmethod
    def _unset_is_off(cls, value: object) -> object:
        return False if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _secrets_fit_for_production(self) -> SecuredSettings:
        if self.dev_mode:
            return self
        problems = policy_problems(self)
        if problems:
            raise ValueError(
                "; ".join(problems) + f" ({SUGGESTION}; {DEV_MODE_ENV}=1 relaxes this for development only)"
            )
        return self
