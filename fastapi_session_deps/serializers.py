"""Session data <-> stored bytes: the only place that knows how a model is encoded.

A stored record is a flat mapping of field name to the JSON encoding of that field's value.
Keeping one entry per top-level field is what lets a save write only the fields a request
changed, and merge them into the latest stored version inside the store, without the store
ever parsing JSON.

Names that start with :data:`RESERVED_PREFIX` (a NUL character) belong to the library's own
metadata and are never handed to the model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Generic, TypeVar

from pydantic_core import from_json, to_json

from .exceptions import ConfigurationError, InvalidSessionData
from .models import SessionModel

__all__ = ["RESERVED_PREFIX", "ModelSerializer", "Serializer"]

#: Field names starting with this belong to the library, not to the session data.
RESERVED_PREFIX = "\x00"

T = TypeVar("T")
M = TypeVar("M", bound=SessionModel)


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

    def new(self) -> M:
        return self.model()

    def dump(self, data: M) -> dict[str, bytes]:
        values = data.model_dump(mode="json")
        return {name: to_json(value) for name, value in values.items()}

    def reset(self, data: M) -> None:
        fresh = self.model()
        for name in type(data).model_fields:
            setattr(data, name, getattr(fresh, name))

    def load(self, fields: Mapping[str, bytes]) -> M:
        try:
            values = {
                name: from_json(raw)
                for name, raw in fields.items()
                if not name.startswith(RESERVED_PREFIX)
            }
            # Stored under field names, so validate by name even if the model has aliases.
            return self.model.model_validate(values, by_alias=False, by_name=True)
        except (ValueError, TypeError, RecursionError) as exc:
            raise InvalidSessionData(
                f"stored data does not validate as {self.model.__name__}: {exc}"
            ) from exc
