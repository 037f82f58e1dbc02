"""Session data <-> stored bytes: the only place that knows how a model is encoded.

A stored record is a flat mapping of field name to the JSON encoding of that field's value.
Keeping one entry per top-level field is what lets a save write only the fields a request
changed, and merge them into the latest stored version inside the store, without the store
ever parsing JSON.

Names that start with :data:`RESERVED_PREFIX` (a NUL character) belong to the library's own
metadata and are never handed to the model.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Generic, TypeVar

from pydantic import ValidationError
from pydantic_core import to_json

from ._record import RESERVED_PREFIX
from .exceptions import ConfigurationError, InvalidSessionData
from .models import SessionModel

__all__ = ["RESERVED_PREFIX", "DictSerializer", "ModelSerializer", "Serializer"]

T = TypeVar("T")
M = TypeVar("M", bound=SessionModel)
D = TypeVar("D", bound=MutableMapping[str, Any])


class Serializer(ABC, Generic[T]):
    """Encodes session data of type ``T`` into a record of fields, and back."""

    @abstractmethod
    def new(self) -> T:
        """Return the data of a new, empty session."""

    @abstractmethod
    def dump(self, data: T) -> dict[str, bytes]:
        """Return ``data`` as a mapping of top-level field name to its JSON bytes.

        Equal values must give equal bytes: that is how changes are detected.
        """

    @abstractmethod
    def reset(self, data: T) -> None:
        """Empty ``data`` in place, leaving it as a new session's."""

    @abstractmethod
    def load(self, fields: Mapping[str, bytes]) -> T:
        """Rebuild session data from stored fields, ignoring reserved ones.

        Raises:
            InvalidSessionData: a field is not JSON, or the whole does not validate.
        """

    def load_for_change_check(self, fields: Mapping[str, bytes]) -> tuple[T, object]:
        """`load`, and a memo of the record for `unchanged` (``None`` when there is none)."""
        return self.load(fields), None

    def unchanged(self, data: T, memo: object) -> bool:
        """``True`` only if ``data`` still dumps to the record the memo was made of.

        A fast check for the common case of a session a request only read; ``False`` when
        unsure, for the caller then compares field by field.
        """
        return False


class ModelSerializer(Serializer[M]):
    """Serializer for a :class:`SessionModel` subclass, through Pydantic's JSON mode.

    Args:
        model: the session model class. Every field must have a default.
    """

    def __init__(self, model: type[M]) -> None:
        if not (isinstance(model, type) and issubclass(model, SessionModel)):
            raise ConfigurationError(
                f"The session model must be a subclass of SessionModel, not {model!r}."
            )
        try:
            model()
        except Exception as exc:
            raise ConfigurationError(
                f"{model.__name__}() must work with no arguments, because a new visitor "
                "gets an empty session: give every field a default."
            ) from exc
        self.model = model
        # '"name":' for every field, JSON-escaped once rather than on every load.
        self._prefixes = {name: to_json(name) + b":" for name in model.model_fields}
        self._to_json = model.__pydantic_serializer__.to_json
        self._validate_json = model.__pydantic_validator__.validate_json

    def new(self) -> M:
        return self.model()

    def dump(self, data: M) -> dict[str, bytes]:
        values = data.model_dump(mode="json")
        return {name: to_json(value) for name, value in values.items()}

    def reset(self, data: M) -> None:
        fresh = self.model()
        for name in type(data).model_fields:
            setattr(data, name, getattr(fresh, name))

    def _document(self, fields: Mapping[str, bytes]) -> bytes:
        """The stored fields as one JSON object: the model's fields in the model's order
        (whatever order the store keeps them in), then any others.

        Names are JSON-escaped; values are the bytes this serializer wrote. (Whoever can
        write the store can write any session anyway, so splicing gives them nothing.)
        """
        prefixes = self._prefixes
        parts = [prefix + fields[name] for name, prefix in prefixes.items() if name in fields]
        parts += [
            to_json(name) + b":" + raw
            for name, raw in fields.items()
            if name not in prefixes and not name.startswith(RESERVED_PREFIX)
        ]
        return b"{" + b",".join(parts) + b"}"

    def unchanged(self, data: M, memo: object) -> bool:
        # The whole model in one call of pydantic's serializer, against the record as it
        # was loaded (the memo): equal only if every field is, in the model's order (the
        # order this serializer stores them in). Anything else (an added field, another
        # order, a value pydantic spells otherwise as a whole) is "unsure", never a false
        # "equal".
        return isinstance(memo, bytes) and self._to_json(data) == memo

    def load(self, fields: Mapping[str, bytes]) -> M:
        return self.load_for_change_check(fields)[0]

    def load_for_change_check(self, fields: Mapping[str, bytes]) -> tuple[M, object]:
        try:
            document = self._document(fields)
            # Stored under field names, so validate by name; aliases are read too, so that
            # a renamed field can name its old name (validation_alias=AliasChoices(...)).
            data = self._validate_json(document, by_alias=True, by_name=True)
            return data, document
        except ValidationError as exc:
            # Name the fields and what is wrong with them, never their values: the record
            # holds someone's session, and this goes to a log.
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or '(record)'}: {error['type']}"
                for error in exc.errors(include_input=False, include_url=False)
            )
            # Not chained: the pydantic error's own text would carry the values.
            raise InvalidSessionData(
                f"stored data does not validate as {self.model.__name__} ({problems})"
            ) from None
        except (ValueError, TypeError, RecursionError) as exc:
            raise InvalidSessionData(
                f"stored data does not validate as {self.model.__name__}: {type(exc).__name__}"
            ) from None


class DictSerializer(Serializer[D]):
    """Serializer for dictionary sessions (``request.session``): one entry per key.

    Values must be what :func:`json.dumps` accepts (dicts, lists, strings, numbers, booleans
    and ``None``), as with Starlette's own session middleware; anything else raises
    ``TypeError`` when the session is saved.

    Args:
        factory: makes an empty mapping of the session's type.
    """

    def __init__(self, factory: Callable[[], D]) -> None:
        self.factory = factory

    def new(self) -> D:
        return self.factory()

    def dump(self, data: D) -> dict[str, bytes]:
        fields: dict[str, bytes] = {}
        for name, value in data.items():
            if not isinstance(name, str) or name.startswith(RESERVED_PREFIX):
                raise TypeError(
                    f"Session keys must be strings not starting with NUL, not {name!r}."
                )
            fields[name] = _dump_json(value)
        return fields

    def reset(self, data: D) -> None:
        data.clear()

    def dump_value(self, value: object) -> bytes:
        """One value, as `dump` writes it."""
        return _dump_json(value)

    def load(self, fields: Mapping[str, bytes]) -> D:
        data = self.factory()
        try:
            for name, raw in fields.items():
                if not name.startswith(RESERVED_PREFIX):
                    data[name] = json.loads(raw)
        except (ValueError, TypeError, RecursionError) as exc:
            # The decoder's message says where, not what: no value reaches the log.
            raise InvalidSessionData(
                f"stored session data is not JSON: {type(exc).__name__}"
            ) from None
        return data


def _dump_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
