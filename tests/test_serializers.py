"""Model <-> stored fields."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import Field

from fastapi_session_deps import ConfigurationError, InvalidSessionData, SessionModel
from fastapi_session_deps.serializers import RESERVED_PREFIX, ModelSerializer


class Rich(SessionModel):
    name: str = ""
    tags: set[str] = set()
    seen: datetime | None = None
    nested: dict[str, list[int]] = {}
    aliased: int = Field(default=0, alias="aliasedField")


def test_round_trip_through_fields() -> None:
    serializer = ModelSerializer(Rich)
    data = Rich(name="Zoë", tags={"a"}, seen=datetime(2026, 1, 2, tzinfo=timezone.utc))
    data.nested["x"] = [1, 2]
    data.aliased = 7
    fields = serializer.dump(data)
    assert set(fields) == {"name", "tags", "seen", "nested", "aliased"}
    assert fields["name"] == '"Zoë"'.encode()
    assert serializer.load(fields) == data


def test_equal_values_encode_to_equal_bytes() -> None:
    serializer = ModelSerializer(Rich)
    assert serializer.dump(Rich(nested={"a": [1]})) == serializer.dump(Rich(nested={"a": [1]}))


def test_reserved_and_unknown_fields_are_ignored_missing_ones_default() -> None:
    serializer = ModelSerializer(Rich)
    loaded = serializer.load({"name": b'"x"', RESERVED_PREFIX + "meta": b"{", "gone": b"1"})
    assert loaded == Rich(name="x")


@pytest.mark.parametrize(
    "fields",
    [
        {"name": b"not json"},
        {"name": b"123"},
        {"nested": b'{"a": "not a list"}'},
        {"name": b"\xff\xfe"},
        {"nested": b"[" * 100_000},
    ],
)
def test_data_that_does_not_validate_raises_invalid_session_data(
    fields: dict[str, bytes],
) -> None:
    with pytest.raises(InvalidSessionData):
        ModelSerializer(Rich).load(fields)


def test_reset_empties_in_place() -> None:
    serializer = ModelSerializer(Rich)
    data = Rich(name="x", tags={"t"})
    serializer.reset(data)
    assert data == Rich()


def test_the_model_must_be_a_session_model() -> None:
    with pytest.raises(ConfigurationError, match="subclass of SessionModel"):
        ModelSerializer(dict)  # type: ignore[type-var]


def test_every_field_needs_a_default() -> None:
    class NoDefault(SessionModel):
        user_id: int

    with pytest.raises(ConfigurationError, match="give every field a default"):
        ModelSerializer(NoDefault)


def test_dict_sessions_round_trip_json_values() -> None:
    from fastapi_session_deps.serializers import DictSerializer

    serializer = DictSerializer(dict)
    data = {"user": "Zoë", "cart": ["a"], "n": 1.5, "ok": None}
    fields = serializer.dump(data)
    assert fields["user"] == '"Zoë"'.encode()
    assert serializer.load({**fields, RESERVED_PREFIX + "created": b"1"}) == data


@pytest.mark.parametrize("key", [1, RESERVED_PREFIX + "x"])
def test_dict_sessions_refuse_keys_that_cannot_be_stored(key: object) -> None:
    from fastapi_session_deps.serializers import DictSerializer

    with pytest.raises(TypeError, match="Session keys must be strings"):
        DictSerializer(dict).dump({key: 1})


@pytest.mark.parametrize("raw", [b"{", b"\xff", b"NaN-ish"])
def test_dict_sessions_refuse_stored_bytes_that_are_not_json(raw: bytes) -> None:
    from fastapi_session_deps.serializers import DictSerializer

    with pytest.raises(InvalidSessionData):
        DictSerializer(dict).load({"a": raw})


def test_an_unchanged_session_is_told_in_one_call_whatever_order_the_store_keeps() -> None:
    # PostgreSQL's jsonb, for one, gives fields back sorted its own way.
    serializer = ModelSerializer(Rich)
    fields = serializer.dump(Rich(name="a", nested={"x": [1]}))
    for order in (fields, dict(reversed(list(fields.items())))):
        data, memo = serializer.load_for_change_check(order)
        assert serializer.unchanged(data, memo)
        data.name = "b"
        assert not serializer.unchanged(data, memo)


def test_a_field_the_model_no_longer_has_is_never_unchanged() -> None:
    serializer = ModelSerializer(Rich)
    data, memo = serializer.load_for_change_check({**serializer.dump(Rich()), "gone": b"1"})
    assert not serializer.unchanged(data, memo)  # the commit removes it
