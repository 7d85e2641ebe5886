"""One display name per test and topic slug (``data/display_names.yaml``), used by the checker, search and the CLI."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

import jakinib
from jakinib.cli import app
from jakinib.errors import KnowledgeError
from jakinib.knowledge import base, fields, loader


def _label_slugs(kb) -> set[str]:
    out: set[str] = set(fields.SCREENING_TESTS)
    for d in kb.drugs.values():
        for lab in d.labels:
            out |= {x.test for x in lab.screening} | {x.test for x in lab.monitoring} | {w.topic for w in lab.warnings}
            if lab.boxed_warning:
                out |= set(lab.boxed_warning.topics)
    return out


def test_every_test_and_topic_the_labels_use_has_a_display_name(kb):
    missing = sorted(x for x in _label_slugs(kb) if x not in kb.display_names and x not in kb.labs)
    assert not missing, f"add these to data/display_names.yaml: {missing}"


@pytest.mark.parametrize(("slug", "start", "mid"), [
    ("hepatitis-c", "Hepatitis C", "hepatitis C"), ("hepatitis-b", "Hepatitis B", "hepatitis B"),
    ("ecg", "ECG", "ECG"), ("hiv", "HIV", "HIV"), ("tuberculosis", "Tuberculosis", "tuberculosis"),
    ("mace", "MACE (major adverse cardiovascular events)", "MACE (major adverse cardiovascular events)"),
    ("anc", "Absolute neutrophil count", "absolute neutrophil count"),  # a lab: its labs.yaml label
    ("not-a-slug", "Not a slug", "not a slug"),
])
def test_display_name(kb, slug, start, mid):
    assert kb.display_name(slug) == start
    assert kb.display_name(slug, start=False) == mid


def test_checker_messages_use_display_names():
    report = jakinib.check({"age": 60, "sex": "male"}, drugs=["pacritinib"], regulator="FDA")
    messages = [f.message for f in report.assessments[0].findings if f.rule.startswith("screening.")]
    assert any(m.startswith("ECG screening not recorded") for m in messages), messages
    assert not any(m.startswith("Ecg ") for m in messages)
    report = jakinib.check({"age": 40, "sex": "female", "pregnant": False}, drugs=["baricitinib"], regulator="FDA")
    messages = [f.message for f in report.assessments[0].findings]
    assert any(m.startswith("Hepatitis C screening not recorded") for m in messages), messages


def test_search_labels_use_display_names(kb):
    labels = [h["label"] for h in kb.search("hepatitis C screening", limit=50)]
    assert any("Hepatitis C screening" in x for x in labels), labels
    assert not any("Hepatitis c" in x for x in labels)


def test_cli_details_show_display_names(tmp_path):
    patient = tmp_path / "p.json"
    patient.write_text('{"age": 40, "sex": "female", "pregnant": false}')
    out = CliRunner().invoke(app, ["check", str(patient), "--drug", "baricitinib", "--regulator", "FDA"]).output
    assert "Hepatitis C" in out and "Tuberculosis" in out, out
    assert "Hepatitis c" not in out and "hepatitis-c" not in out


def test_a_name_given_twice_is_a_clear_error(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(loader.DATA_DIR, data)
    with (data / "display_names.yaml").open("a") as fh:
        fh.write("  - {id: ecg, name: Electrocardiogram}\n")
    with pytest.raises(KnowledgeError, match=r"display_names\.yaml: 'ecg' is named twice"):
        base.build(data, cache=False)
