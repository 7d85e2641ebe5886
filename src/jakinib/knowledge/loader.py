"""Read the YAML data files, validate them into schema models, and cross-check references.

Any problem becomes one ``KnowledgeError`` line naming the file, the record and the field.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from jakinib.errors import KnowledgeError
from jakinib.knowledge import schema as s

DATA_DIR = Path(__file__).parent / "data"
M = TypeVar("M", bound=BaseModel)


@functools.cache
def _loader_class() -> type:
    """The safe loader, refusing a mapping that repeats a key (YAML would keep the last silently).

    Built on first use, so a start-up that reads the validated cache never imports PyYAML."""
    import yaml

    class UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                    seen.add(key)
                except TypeError:
                    pass  # an unhashable key: SafeConstructor reports it
            return super().construct_mapping(node, deep=deep)

        def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
            try:
                return super().construct_yaml_timestamp(node)
            except ValueError as exc:  # e.g. 2022-13-45: looks like a date, is not one
                raise yaml.constructor.ConstructorError(None, None, f"{node.value!r} is not a valid date ({exc})",
                                                        node.start_mark) from None

    UniqueKeyLoader.add_constructor("tag:yaml.org,2002:timestamp", UniqueKeyLoader.construct_yaml_timestamp)
    return UniqueKeyLoader


def read_yaml(path: Path) -> Any:
    """Parse one YAML file; a syntax error or a duplicated key names the file and line."""
    import yaml

    loader_class = _loader_class()
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=loader_class)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise KnowledgeError(f"{_rel(path)}{where}: invalid YAML: {problem}") from None
    except OSError as exc:
        raise KnowledgeError(f"{_rel(path)}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise KnowledgeError(f"{_rel(path)}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from None


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(DATA_DIR.parent.parent.parent.parent))
    except ValueError:
        return str(path)


def _record_name(item: Any, index: int) -> str:
    if isinstance(item, dict):
        for key in ("id", "name", "product"):
            if key in item:
                return f"record {index} ({item[key]})"
    return f"record {index}"


def _explain(exc: ValidationError, path: Path, record: str) -> KnowledgeError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(record)"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    msg = err["msg"].removeprefix("Value error, ")
    return KnowledgeError(f"{_rel(path)}: {record}: field {loc}: {msg}{more}")


def parse_list(path: Path, model: type[M]) -> list[M]:
    """A YAML file holding a list of records of one model."""
    raw = read_yaml(path)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise KnowledgeError(f"{_rel(path)}: expected a list of {model.__name__} records")
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(model.model_validate(item))
        except ValidationError as exc:
            raise _explain(exc, path, _record_name(item, i)) from None
    return out


def parse_one(path: Path, model: type[M]) -> M:
    """A YAML file holding one record."""
    raw = read_yaml(path)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _explain(exc, path, _record_name(raw, 0) if isinstance(raw, dict) else "file") from None


def parse_sections(path: Path, sections: dict[str, type[BaseModel]]) -> dict[str, list[Any]]:
    """A YAML mapping whose keys each hold a list of one model (e.g. indications.yaml)."""
    raw = read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise KnowledgeError(f"{_rel(path)}: expected a mapping with keys {sorted(sections)}")
    unknown = set(raw) - set(sections)
    if unknown:
        raise KnowledgeError(f"{_rel(path)}: unknown key(s) {sorted(unknown)}; expected {sorted(sections)}")
    out: dict[str, list[Any]] = {}
    for key, model in sections.items():
        items = raw.get(key) or []
        adapter = TypeAdapter(model)
        parsed = []
        for i, item in enumerate(items):
            try:
                parsed.append(adapter.validate_python(item))
            except ValidationError as exc:
                raise _explain(exc, path, f"{key} {_record_name(item, i)}") from None
        out[key] = parsed
    return out


def iter_citations(obj: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Yield (citation, location) for every ``sources`` list inside a model tree."""
    if isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            value = getattr(obj, name)
            if name == "sources" and isinstance(value, list):
                for c in value:
                    yield c, where
            else:
                label = getattr(obj, "id", None) or getattr(obj, "name", None)
                yield from iter_citations(value, f"{where}.{name}" if where else (label or name))
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from iter_citations(item, f"{where}[{i}]")
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from iter_citations(item, f"{where}.{key}")


def iter_predicates(pred: s.Predicate) -> Iterator[s.Predicate]:
    """Every leaf and node of a predicate tree."""
    yield pred
    for child in (pred.all or []) + (pred.any or []) + ([pred.not_] if pred.not_ else []):
        yield from iter_predicates(child)
