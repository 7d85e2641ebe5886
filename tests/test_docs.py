"""Documentation must keep up: every CLI command, HTTP endpoint and knowledge-base field is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import jakinib
from jakinib.knowledge import schema

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
KB_DOC = (ROOT / "docs" / "knowledge-base.md").read_text()


def _commands():
    from jakinib.cli import app, kb_app

    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    names += [f"kb {c.name}" for c in kb_app.registered_commands]
    return names


@pytest.mark.parametrize("command", _commands())
def test_every_cli_command_is_in_the_readme(command):
    assert f"jakinib {command}" in README


def _routes():
    from jakinib.web.app import create_app
    from jakinib.web.settings import Settings

    app = create_app(Settings(database_url="sqlite://"))
    return sorted(p for p in app.openapi()["paths"] if p.startswith(("/api/", "/cds-services")))


@pytest.mark.parametrize("path", _routes())
def test_every_endpoint_is_in_the_readme(path):
    assert path in README, path


MODELS = [schema.Source, schema.Target, schema.Product, schema.Approval, schema.Label, schema.Dose, schema.MonitoringItem,
          schema.Rule, schema.RenalBasis, schema.Predicate, schema.DrugFile, schema.CellularPotency, schema.PK, schema.PopPK, schema.Pathway,
          schema.MeasuredPotency, schema.CodeMapping, schema.Term, schema.Evidence, schema.MedicationEntry, schema.LabDef,
          schema.MonitoringTest, schema.ClassFact, schema.DisplayName]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_knowledge_base_field_is_documented(model):
    for name, field in model.model_fields.items():
        key = field.alias or name
        assert re.search(rf"\b{re.escape(key)}\b", KB_DOC), f"{model.__name__}.{key} is not in docs/knowledge-base.md"


def test_public_names_are_sorted_and_exported():
    assert jakinib.__all__ == sorted(jakinib.__all__)
    for name in jakinib.__all__:
        assert hasattr(jakinib, name)
    assert set(jakinib.__all__) == {"InputError", "JakinibError", "KnowledgeError", "__version__", "check", "load",
                                    "read_patient", "screen", "simulate"}
