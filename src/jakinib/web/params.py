"""The request parameters the API and the pages share, with their ranges: one definition for both.

The API declares them as ``Query(...)`` types (so they are in the OpenAPI); the pages, which take raw
form and query strings, read them with ``read(name, raw, type)``, which raises an ``InputError`` naming
the field. A value outside its range is an error at the boundary, never a 200 with a null result.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from jakinib.errors import InputError

EARLIEST_TODAY, LATEST_TODAY = dt.date(1900, 1, 1), dt.date(2199, 12, 31)  # monitoring dates are counted from 'today'


def plausible_today(value: dt.date | None, name: str = "today") -> dt.date | None:
    """``value`` if monitoring dates can be counted from it, else an ``InputError`` (400: a date range is not
    expressible in the OpenAPI schema, so it is a semantic error, not a 422)."""
    if value is not None and not EARLIEST_TODAY <= value <= LATEST_TODAY:
        raise InputError(f"{name}: {value} is not between {EARLIEST_TODAY} and {LATEST_TODAY}")
    return value


Number = Annotated[float, Field(allow_inf_nan=False)]
WeightKg = Annotated[float, Field(gt=0, le=700, allow_inf_nan=False, description="kg")]
Name = Annotated[str, Field(min_length=1, max_length=100)]
Age = Annotated[float, Field(ge=0, le=130, allow_inf_nan=False, description="years")]
DoseMg = Annotated[float, Field(ge=0.01, le=10_000, allow_inf_nan=False, description="mg per dose")]
EveryH = Annotated[float, Field(ge=1, le=168, allow_inf_nan=False, description="dosing interval, hours")]
Population = Annotated[int, Field(ge=0, le=20_000, description="virtual patients (0: the typical patient only)")]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Today = Annotated[dt.date, Field(description=f"the date monitoring is counted from ({EARLIEST_TODAY} to {LATEST_TODAY})")]
DrugList = Annotated[list[Name], Field(max_length=20)]

_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def read(name: str, raw: str | None, kind: Any) -> Any:
    """``raw`` (a query or form string; empty means absent) as ``kind``, or an ``InputError`` naming ``name``."""
    if raw is None or not raw.strip():
        return None
    adapter = _ADAPTERS.setdefault(kind, TypeAdapter(kind))
    try:
        return adapter.validate_python(raw.strip())
    except ValidationError as exc:
        raise InputError(f"{name}: {exc.errors()[0]['msg'].removeprefix('Value error, ')} (got {raw.strip()[:40]!r})") from None
