"""How each value of a log record becomes a stored value, or a one-line reason to reject
the record (``InvalidRecord``): timestamps in their three formats, integers and numbers
within what the warehouse stores, booleans, text, category lists, and JSON kept as text.

Both parsers use these (``ingest.records``, the Python path, and ``ingest.engine_typed``,
the typed one), so a value is converted, or refused, the same way by either.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from ingest.errors import InvalidRecord

__all__ = [
    "MAX_STORED",
    "MAX_US",
    "MICROS_FROM",
    "MILLIS_FROM",
    "NANOS_FROM",
    "boolean",
    "integer",
    "json_kind",
    "json_text",
    "metadata_value",
    "names",
    "number",
    "show",
    "text",
    "timestamp_us",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MAX_US: Final = 9_000_000_000_000_000  # ~ year 2255; keeps int64 nanoseconds valid
# A number's unit, told by its size: nanoseconds from NANOS_FROM, microseconds from
# MICROS_FROM, milliseconds from MILLIS_FROM, seconds below it.
NANOS_FROM: Final = 10**17
MICROS_FROM: Final = 10**14
MILLIS_FROM: Final = 10**11


def timestamp_us(value: Any) -> int:
    """Microseconds since the epoch (UTC) from unixnano, unix, millis or RFC 3339."""
    kind = type(value)
    if kind is str:
        text = value.strip()
        if text.isascii() and text.isdigit():
            if len(text) > _MAX_DIGITS:  # Python refuses to read past 4,300 digits
                raise InvalidRecord(f"bad timestamp {show(value)}")
            return timestamp_us(int(text))
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidRecord(f"bad timestamp {show(value)}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        micros = (parsed - _EPOCH) // _ONE_US
    elif kind is int:
        magnitude = abs(value)
        if magnitude >= NANOS_FROM:
            micros = value // 1000
        elif magnitude >= MICROS_FROM:
            micros = value
        elif magnitude >= MILLIS_FROM:
            micros = value * 1000
        else:
            micros = value * 1_000_000
    elif kind is float:
        if abs(value) >= MILLIS_FROM:  # milli-, micro- or nanoseconds: the integer rule
            return timestamp_us(int(value))
        micros = round(value * 1_000_000)  # seconds with a fraction
    else:
        raise InvalidRecord(f"bad timestamp {show(value)}")
    if not 0 <= micros < MAX_US:
        raise InvalidRecord(f"timestamp out of range {show(value)}")
    return int(micros)


_ONE_US: Final = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


# Integers past these cannot be stored (BIGINT; INTEGER for status and step); token
# counts stay under 2**62 so that input plus cache tokens still fit.
_MAX_COUNT: Final = 2**62
MAX_STORED: Final = 2**63  # BIGINT: a sum of counts (input plus cache tokens) must stay under it
_MAX_DIGITS: Final = 40  # digits of a timestamp given as text (a real one has at most 19)
_MAX_SMALL: Final = 2**31
_SMALL_INTEGERS: Final = frozenset({"status code", "step"})


def integer(value: Any, name: str) -> int | None:
    kind = type(value)
    if value is None:
        return None
    number: int | None = None
    if kind is int:
        number = value
    elif kind is float and value.is_integer():
        number = int(value)
    elif kind is str:
        try:
            number = int(value)
        except ValueError:
            number = None
    if number is None:
        raise InvalidRecord(f"{name} is not an integer: {show(value)}")
    limit = _MAX_SMALL if name in _SMALL_INTEGERS else _MAX_COUNT
    if not -limit <= number < limit:
        raise InvalidRecord(f"{name} out of range: {show(value)}")
    return number


def number(value: Any, name: str) -> float | None:
    kind = type(value)
    if kind is float or value is None:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    if kind is str:
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    raise InvalidRecord(f"{name} is not a number: {show(value)}")


# True and False also match 1 and 0 (equal keys), which some writers use for booleans.
_TRUE: Final = {True: True, False: False, "true": True, "false": False}


def boolean(value: Any, name: str) -> bool | None:
    if value is None:
        return None
    try:
        return _TRUE[value.lower() if type(value) is str else value]
    except (KeyError, TypeError):
        raise InvalidRecord(f"{name} is not a boolean: {show(value)}") from None


def text(value: Any, name: str) -> str | None:
    kind = type(value)
    if kind is str or value is None:
        return value  # type: ignore[no-any-return]
    if kind is int or kind is float or kind is bool:
        return str(value)
    raise InvalidRecord(f"{name} is not a string: {show(value)}")


def names(value: Any, name: str) -> list[str] | None:
    """A list of category names; a comma-separated string is accepted too."""
    if value is None:
        return None
    if type(value) is str:
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(type(item) is str for item in value):
        return value
    raise InvalidRecord(f"{name} is not a list of names: {show(value)}")


def metadata_value(value: Any) -> Any:
    """Metadata as an object where it is JSON text (REST); other values as they are."""
    if type(value) is str and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def json_text(value: Any, name: str = "a JSON value") -> str | None:
    """``value`` as JSON text; ``InvalidRecord`` when it cannot be written back (nested
    deeper than orjson writes, 255 levels, though it parsed)."""
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InvalidRecord(f"{name} cannot be stored as JSON: {reason}") from None


def json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return (
        "a number"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else "a boolean"
    )


def show(value: Any) -> str:
    """A short, safe rendering of a bad value for a reject reason."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
