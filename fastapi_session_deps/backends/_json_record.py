"""A record as two JSON objects of text: the session's fields and the library's own.

Stores that keep JSON (`FunctionBackend`'s functions, `SQLBackend`'s columns) keep a record
this way. Values are the UTF-8 text the serializers write (JSON, or base64 when encrypted).
The library's fields (names that start with NUL) go apart, without the NUL: JSON allows it,
but PostgreSQL's ``jsonb``, for one, does not.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._record import RESERVED_PREFIX

__all__ = ["join_fields", "split_fields"]


def split_fields(fields: Mapping[str, bytes]) -> tuple[dict[str, str], dict[str, str]]:
    """The session's fields and the library's, each as a JSON-able object of text.

    Raises:
        UnicodeDecodeError: a value that is not UTF-8 text.
    """
    data: dict[str, str] = {}
    meta: dict[str, str] = {}
    for name, value in fields.items():
        if name.startswith(RESERVED_PREFIX):
            meta[name[len(RESERVED_PREFIX) :]] = value.decode("utf-8")
        else:
            data[name] = value.decode("utf-8")
    return data, meta


def join_fields(data: object, meta: object) -> dict[str, bytes]:
    """The inverse of `split_fields`, for objects read back from a store.

    Raises:
        TypeError: anything but two objects of text.
    """
    if not isinstance(data, dict) or not isinstance(meta, dict):
        raise TypeError("the fields and the meta fields must be objects")
    fields: dict[str, bytes] = {}
    for prefix, group in (("", data), (RESERVED_PREFIX, meta)):
        for name, value in group.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError("field names and values must be strings")
            fields[prefix + name] = value.encode("utf-8")
    return fields
