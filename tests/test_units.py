"""safety/units.py converts by a table of exact factors; pint (a test dependency) cross-checks every combination."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from jakinib.errors import PatientError
from jakinib.safety import units

EXPRESSIONS = sorted(set(units.ALIASES.values()) | set(units.CASE_SENSITIVE.values()) | set(units.CANONICAL.values()))


def test_every_written_form_has_a_factor():
    assert set(EXPRESSIONS) <= set(units.UNITS)


def _pint_factor(ureg, expression: str, to: str, molar_mass: float | None) -> float | None:
    src, dst = ureg(expression), ureg(units.CANONICAL.get(to, to))
    try:
        return float((src / dst).to("dimensionless").magnitude)
    except Exception:
        if molar_mass is None:
            return None
        try:
            return float((src * ureg(f"{molar_mass} g/mol") / dst).to("dimensionless").magnitude)
        except Exception:
            return None


def test_the_factor_table_agrees_with_pint_for_every_combination():
    pint = pytest.importorskip("pint")
    ureg = pint.UnitRegistry()
    ureg.define("U_per_L = [enzyme_activity_concentration]")
    checked = 0
    for expression in EXPRESSIONS:
        for to in units.CANONICAL:
            for molar_mass in (None, 113.12):
                expected = _pint_factor(ureg, expression, to, molar_mass)
                if expected is None:
                    with pytest.raises(PatientError, match="cannot be converted"):
                        units.factor(expression, to, molar_mass)
                else:
                    assert math.isclose(units.factor(expression, to, molar_mass), expected, rel_tol=1e-12), \
                        (expression, to, molar_mass)
                checked += 1
    assert checked > 400


@pytest.mark.parametrize(("value", "unit", "to", "expected"), [
    (500, "cells/mm3", "10^9/L", 0.5), (1.2, "x10E3/uL", "10^9/L", 1.2), (125, "g/L", "g/dL", 12.5),
    (88.4, "µmol/L", "mg/dL", 88.4 * 113.12 / 1e4), (154, "lb", "kg", 154 * 0.45359237), (70, "in", "cm", 177.8),
])
def test_known_conversions(value, unit, to, expected):
    assert units.convert(value, unit, to, units_molar_mass(to)) == pytest.approx(expected)


def units_molar_mass(to: str) -> float | None:
    return 113.12 if to == "mg/dL" else None


def test_checking_a_patient_does_not_import_pint_or_numpy():
    code = ("import sys, jakinib; jakinib.check({'age': 50, 'sex': 'female', 'labs': {'hb': {'value': 125, 'unit': 'g/L'}, "
            "'creatinine': {'value': 90, 'unit': 'umol/L'}, 'anc': {'value': 1800, 'unit': 'cells/uL'}}}); "
            "print(sorted(m for m in ('pint', 'numpy', 'scipy', 'polars', 'matplotlib', 'fastapi', 'sqlalchemy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
