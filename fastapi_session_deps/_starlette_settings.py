"""`SessionMiddleware`'s keywords: every spelling users bring, folded into one set of names.

Starlette's own keywords are the canonical names. starsessions' and the tutorial's
spellings (`SPELLINGS`) fold into them, with the meaning they have there; two spellings of
one setting, an unknown keyword and a starsessions keyword with no counterpart here are
refused with a message that names the fix. What is left over are `SessionPolicy` settings.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, cast

from .exceptions import ConfigurationError
from .policy import POLICY_SETTINGS, PolicySettings

__all__ = [
    "COOKIE_SETTINGS",
    "DEFAULT",
    "DEFAULT_IDENTITY_KEYS",
    "DEFAULT_MAX_AGE",
    "SPELLINGS",
    "compiled_pattern",
    "positive",
    "resolve",
]

#: Starlette's default cookie lifetime: 14 days.
DEFAULT_MAX_AGE = 14 * 24 * 60 * 60

#: Each setting's other spellings: starsessions' and the tutorial's. ``lifetime`` and
#: ``rolling`` are starsessions' too, but change meaning on the way (see `resolve`).
SPELLINGS: dict[str, tuple[str, ...]] = {
    "session_cookie": ("cookie_name",),
    "same_site": ("cookie_same_site",),
    "https_only": ("cookie_https_only",),
    "domain": ("cookie_domain",),
    "path": ("cookie_path",),
    "max_age": ("lifetime",),
    "autoload": ("autoload_cookie",),
    "backend": ("store",),
}
_CANONICAL = {alias: name for name, aliases in SPELLINGS.items() for alias in aliases}
#: starsessions keywords that have no counterpart here, with the reason.
_UNSUPPORTED = {
    "serializer": "sessions are always stored as JSON, one entry per key",
    "encryptor": "encryption at rest is not a SessionMiddleware setting",
}
#: Keywords of `SessionMiddleware` that are neither spelt otherwise nor policy settings.
_OTHER_KEYWORDS = (
    "secret_key",
    "partitioned",
    "rolling",
    "frontend",
    "identity_keys",
    "lazy_paths",
)

#: The ``request.session`` keys that say who the session belongs to, as the log-ins of
#: common libraries and hand-written code write them: starlette-login's (and Flask-Login's)
#: ``_user_id``, Django's ``_auth_user_id``, sqladmin's documented ``token``,
#: starlette-admin's ``username``, authlib's documented ``user``, and the usual names.
DEFAULT_IDENTITY_KEYS = frozenset(
    {
        "_auth_user_id",
        "_user_id",
        "access_token",
        "account_id",
        "id_token",
        "token",
        "uid",
        "user",
        "user_id",
        "userid",
        "username",
    }
)
#: Cookie settings that a ready-made ``frontend=`` replaces.
COOKIE_SETTINGS = frozenset(
    {"session_cookie", "max_age", "path", "same_site", "https_only", "domain"}
)


class _Default:
    """The default of a keyword the caller did not give (so two spellings can be told)."""

    def __repr__(self) -> str:
        return "<default>"


#: What `SessionMiddleware`'s signature shows for a keyword left to its default.
DEFAULT: Any = _Default()


def resolve(
    given: dict[str, Any], others: dict[str, Any]
) -> tuple[dict[str, Any], PolicySettings]:
    """Fold the other spellings into Starlette's names, refusing doubles and unknowns.

    Args:
        given: the keywords of Starlette's own the caller gave, by name.
        others: every other keyword.

    Returns:
        The middleware's own settings, by Starlette's names, and the `SessionPolicy` ones.

    Raises:
        ConfigurationError: two spellings of one setting, or an unknown keyword.
    """
    chosen = dict(given)
    policy: dict[str, Any] = {}
    for alias, value in others.items():
        if alias in POLICY_SETTINGS:
            policy[alias] = value
            continue
        name = _CANONICAL.get(alias)
        if name is None:
            raise ConfigurationError(_unknown_keyword(alias))
        if name in chosen:
            spelled = next(a for a in (name, *SPELLINGS[name]) if a in given or a in others)
            raise ConfigurationError(
                f"SessionMiddleware got both {spelled}= and {alias}=, two spellings of one "
                f"setting: keep one."
            )
        chosen[name] = value
    if "lifetime" in others:
        # starsessions: 0 is a browser-session cookie; a session ends `lifetime` after its
        # creation unless rolling=True.
        chosen["max_age"] = others["lifetime"] or None
        chosen.setdefault("rolling", False)
    if chosen.pop("rolling", None) is False and positive(chosen.get("max_age")) is not None:
        if "absolute_timeout" in policy:
            raise ConfigurationError(
                "SessionMiddleware got both rolling=False and absolute_timeout=, two "
                "spellings of one setting (rolling=False ends a session max_age after its "
                "creation): keep one."
            )
        policy["absolute_timeout"] = chosen["max_age"]
    return chosen, cast("PolicySettings", policy)


def _unknown_keyword(name: str) -> str:
    if name in _UNSUPPORTED:
        return f"SessionMiddleware has no {name}= (starsessions has): {_UNSUPPORTED[name]}."
    known = [*SPELLINGS, *_CANONICAL, *POLICY_SETTINGS, *_OTHER_KEYWORDS]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]}=?" if close else ""
    return f"SessionMiddleware got an unknown keyword {name}=.{hint}"


def positive(max_age: Any) -> float | None:
    """``max_age`` as the default idle timeout: only a positive one is a lifetime."""
    if isinstance(max_age, timedelta):
        max_age = max_age.total_seconds()
    return float(max_age) if isinstance(max_age, (int, float)) and max_age > 0 else None


def identity_key_set(value: object) -> frozenset[str]:
    """The ``identity_keys`` setting as a set of keys: ``True`` for the default ones,
    ``False`` for none.

    Raises:
        ConfigurationError: anything but a boolean or a collection of text.
    """
    if value is True:
        return DEFAULT_IDENTITY_KEYS
    if value is False:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError(
            f"identity_keys={value!r}: pass True (the default keys), False, or a list of "
            "keys, such as [*DEFAULT_IDENTITY_KEYS, 'member_id']."
        )
    keys = frozenset(value)
    if not all(isinstance(key, str) for key in keys):
        raise ConfigurationError(f"identity_keys={value!r}: the keys must be strings.")
    return keys


def compiled_pattern(path: object, setting: str = "paths") -> re.Pattern[str]:
    """A path setting's regular expression (a string, or one compiled already).

    Raises:
        ConfigurationError: anything else, or a string that does not compile.
    """
    if isinstance(path, re.Pattern):
        return path
    if isinstance(path, str):
        try:
            return re.compile(path)
        except re.error as exc:
            raise ConfigurationError(
                f"{setting}: {path!r} is not a regular expression: {exc}"
            ) from exc
    raise ConfigurationError(f"{setting}: {path!r} is neither a string nor a compiled pattern.")
