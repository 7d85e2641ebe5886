"""Rebuild already-validated pydantic models from their own JSON dump, without running validation.

The knowledge-base cache holds models that :mod:`jakinib.knowledge.loader` validated when the cache was written
(and whose bytes a SHA-256 vouches for), so reading it again needs no validator: building pydantic's validators
for every schema class costs more at start-up than the whole rest of ``jakinib drug NAME``. This module walks each
model's field annotations instead and builds instances with ``model_construct``. It is strict about shape (an
unknown key, a missing required field, a value of the wrong JSON type or outside a ``Literal`` is a
:class:`ShapeError`, and the caller rebuilds from the YAML), and it executes nothing from the data: JSON in, plain
values and the schema's own classes out.

>>> from jakinib.knowledge import schema
>>> b = construct(schema.Brand, {"name": "Rinvoq", "regulators": ["FDA"]})
>>> b == schema.Brand(name="Rinvoq", regulators=["FDA"])
True
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

Convert = Callable[[Any], Any]


class ShapeError(ValueError):
    """Data that does not have the shape of the model it is read as."""


def construct(annotation: Any, data: Any) -> Any:
    """``data`` (parsed JSON of ``model_dump(mode="json", by_alias=True)``) as an instance of ``annotation``."""
    return converter(annotation)(data)


def dump(value: Any) -> Any:
    """The JSON-ready form :func:`construct` reads back: models by alias, unset fields left out, dates as ISO text."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    return value


def to_json(value: Any) -> Any:
    """``model.model_dump(mode="json", by_alias=True, exclude_none=True)`` for the schema's models, without pydantic.

    The schema's models defer building their validators and serializers to first use, and the first
    ``model_dump`` of a model builds both (with pydantic's plugin discovery): more at start-up than the rest of
    ``jakinib drug NAME``'s work. ``tests/test_knowledge.py`` holds this equal to ``model_dump`` on every object
    of the knowledge base."""
    if isinstance(value, BaseModel):
        out = {}
        for name, info in type(value).model_fields.items():
            item = getattr(value, name)
            if item is not None:
                out[info.alias or name] = to_json(item)
        return out
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@functools.cache
def converter(annotation: Any) -> Convert:
    """A function turning JSON data into a value of ``annotation`` (built once per annotation)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _model_converter(annotation)
    if origin is typing.Annotated:
        return converter(args[0])
    if origin in (typing.Union, types.UnionType):
        return _union(args)
    if origin is list:
        item = converter(args[0])
        return lambda v: [item(x) for x in _expect(v, list)]
    if origin is tuple:
        items = [converter(a) for a in args]
        return lambda v: tuple(c(x) for c, x in zip(items, _expect(v, list, len(items)), strict=True))
    if origin is dict:
        key, value = converter(args[0]), converter(args[1])
        return lambda v: {key(k): value(x) for k, x in _expect(v, dict).items()}
    if origin is typing.Literal:
        allowed = frozenset(args)
        return lambda v: v if v in allowed and type(v) in (str, int, bool) else _wrong(v, f"one of {sorted(map(str, allowed))}")
    if annotation is dt.date:
        return _date
    if annotation is Any:
        return lambda v: v
    if annotation is float:
        return lambda v: v if type(v) is float else _wrong(v, "a float")
    if annotation in (str, int, bool):
        return lambda v: v if type(v) is annotation else _wrong(v, annotation.__name__)
    if annotation is type(None):
        return lambda v: v if v is None else _wrong(v, "null")
    raise TypeError(f"construct: no converter for {annotation!r}")  # a schema change this module must learn


def _union(args: tuple[Any, ...]) -> Convert:
    """``X | None`` and unions of plain JSON types (``float | str | None``): the member whose JSON type matches."""
    nullable = type(None) in args
    members = [a for a in args if a is not type(None)]
    if len(members) == 1:
        one = converter(members[0])
        return (lambda v: None if v is None else one(v)) if nullable else one
    by_type: dict[type, Convert] = {}
    for m in members:
        if m not in (str, float, int, bool):
            raise TypeError(f"construct: unions of {members!r} are not supported")
        by_type[m] = converter(m)

    def pick(v: Any) -> Any:
        if v is None and nullable:
            return None
        conv = by_type.get(type(v))
        return conv(v) if conv else _wrong(v, " or ".join(m.__name__ for m in members))

    return pick


def _model_converter(model: type[BaseModel]) -> Convert:
    """Instances made as ``model_construct`` makes them (fields in definition order, unset ones at their defaults,
    ``model_fields_set`` the keys given) but with the defaults resolved once: ``model_construct`` inspects each
    default factory's signature on every call, which costs more than the rest of the load."""
    if model.__private_attributes__ or model.__pydantic_post_init__:
        raise TypeError(f"construct: {model.__name__} has private attributes or a post-init hook")
    template: dict[str, Any] = {}  # every field in definition order; immutable defaults already in place
    factories: list[tuple[str, str, Callable[[], Any]]] = []  # fields whose default is made fresh per instance
    names: dict[str, str] = {}  # JSON key (alias) -> field name
    annotations: dict[str, Any] = {}
    required = set()
    for name, info in model.model_fields.items():
        key = info.alias or name
        names[key] = name
        annotations[key] = info.annotation
        template[name] = None if info.default_factory is not None or info.is_required() else info.default
        if info.default_factory is not None:
            factories.append((key, name, info.default_factory))  # type: ignore[arg-type]
        elif info.is_required():
            required.add(key)
        elif not (info.default is None or type(info.default) in (str, int, float, bool)):
            factories.append((key, name, functools.partial(copy.deepcopy, info.default)))
    convert: dict[str, Convert] = {}
    new = object.__new__
    setattr_ = object.__setattr__

    def build(v: Any) -> BaseModel:
        if not convert:  # annotations are resolved on first use (a model may refer to itself)
            convert.update({key: converter(annotation) for key, annotation in annotations.items()})
        data = _expect(v, dict)
        if not required <= data.keys():
            raise ShapeError(f"{model.__name__}: missing field(s) {sorted(required - data.keys())}")
        values = template.copy()
        try:
            for k, x in data.items():
                values[names[k]] = convert[k](x)
        except KeyError:
            raise ShapeError(f"{model.__name__}: unknown field(s) {sorted(data.keys() - names.keys())}") from None
        for key, name, factory in factories:
            if key not in data:
                values[name] = factory()
        obj = new(model)
        setattr_(obj, "__dict__", values)
        setattr_(obj, "__pydantic_fields_set__", {names[k] for k in data})
        setattr_(obj, "__pydantic_extra__", None)
        setattr_(obj, "__pydantic_private__", None)
        return obj

    return build


def _date(value: Any) -> dt.date:
    try:
        return dt.date.fromisoformat(_expect(value, str))
    except ValueError:
        raise ShapeError(f"expected an ISO date, got {str(value)[:40]!r}") from None


def _expect(value: Any, kind: type, length: int | None = None) -> Any:
    if type(value) is not kind or (length is not None and len(value) != length):
        _wrong(value, kind.__name__ if length is None else f"a list of {length}")
    return value


def _wrong(value: Any, expected: str) -> Any:
    raise ShapeError(f"expected {expected}, got {type(value).__name__} {str(value)[:40]!r}")
