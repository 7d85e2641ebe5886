"""The public acceptance vignettes, run through the CLI as they are.

They run from the copy kept in the repository (``tests/fixtures/acceptance/checker.yaml``), so a plain
clone tests itself; where ``../shared/acceptance/`` exists, the copy must equal it byte for byte.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from conftest import SHARED, run_cli

CASES_FILE = Path(__file__).parent / "fixtures" / "acceptance" / "checker.yaml"
UPSTREAM = SHARED / "acceptance" / "checker.yaml"
MERGED = ("labs", "screening", "metabolizer")


def _load():
    spec = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
    return spec["base"], spec["cases"]


BASE, CASES = _load()


def test_copy_equals_the_shared_cases():
    if not UPSTREAM.exists():
        pytest.skip(f"no shared acceptance folder at {UPSTREAM.parent} (set JAKINIB_SHARED to compare the copy)")
    assert CASES_FILE.read_bytes() == UPSTREAM.read_bytes(), f"{CASES_FILE} differs from {UPSTREAM}: copy it again"


def build_patient(base: dict, patch: dict) -> dict:
    patient = copy.deepcopy(base)
    for key, value in (patch or {}).items():
        if key in MERGED and isinstance(value, dict):
            patient.setdefault(key, {}).update(value)
        else:
            patient[key] = value
    return patient


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_vignette(case, tmp_path: Path):
    path = tmp_path / f"{case['id']}.json"
    path.write_text(json.dumps(build_patient(BASE, case.get("patch", {}))))
    args = ["check", str(path), "--drug", case["drug"], "--regulator", case["regulator"], "--json"]
    if case.get("indication"):
        args += ["--indication", case["indication"]]
    r = run_cli(*args)
    if case.get("error"):
        assert r.code == 2, r.out
        assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
        return
    assert r.code == 0, r.err
    report = r.json()
    (a,) = [x for x in report["assessments"] if x["drug"] == case["drug"]]
    why = f"{case['id']}: {case.get('why')}\n{json.dumps(a, indent=1)[:3000]}"
    if "status_in" in case:
        assert a["status"] in case["status_in"], why
    if "dose_mg" in case:
        assert a["dose"] is not None and a["dose"]["mg"] == case["dose_mg"], why
    if "dose_every_h" in case:
        assert a["dose"]["every_h"] == case["dose_every_h"], why
    for slug in case.get("screening_includes", []):
        assert slug in a["screening_missing"], why
