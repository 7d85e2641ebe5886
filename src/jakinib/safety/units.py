"""Lab units: parse a unit as written in a lab report or FHIR (UCUM-ish), convert by a table of exact factors.

Every written form maps to one of a closed set of unit expressions (``ALIASES``), and each expression to its
dimension and its factor to that dimension's base unit (``UNITS``), so conversion is one division, with no unit
registry to load (pint's took about 0.5 s on the first patient). Counts are per volume (``cells/mm3`` =
``1/mm**3``), so 500 cells/mm3 is 0.5 x 10^9/L. An unknown unit, or one of the wrong dimension for the lab, is an
error; a molar concentration converts to a mass one only with the lab's molar mass.

Written forms are normalised before lookup: spaces removed, the Greek mu (U+03BC) and the micro sign
(U+00B5) read as ``u``, superscripts ``³ ²`` as ``3 2``, ``×`` as ``x``. UCUM is case-sensitive where it
matters: ``G/L`` is giga per litre (a count, 10^9/L) while ``g/L`` is grams per litre, so an exact-case
table is consulted before the case-insensitive one.
"""

from __future__ import annotations

import re
from functools import cache

from jakinib.errors import PatientError

# Exact-case written forms (after normalise_text) whose meaning depends on case (UCUM G = giga, g = gram).
CASE_SENSITIVE: dict[str, str] = {"G/L": "1e9/L", "T/L": "1e12/L"}
# Written forms -> unit expressions (keys of UNITS). Keys are lower-cased with spaces removed. Real-world spellings seen in
# EHR feeds are included (x10E3/uL, K/uL, Thousand/uL, 10^3/uL, 10*3/uL = the same 10^9/L for counts).
ALIASES: dict[str, str] = {
    "x10e3/ul": "1e3/uL", "10e3/ul": "1e3/uL", "x10e9/l": "1e9/L", "thousand/ul": "1e3/uL", "k/mm3": "1e3/mm**3",
    "thou/ul": "1e3/uL", "10^3/µl": "1e3/uL", "x10(3)/ul": "1e3/uL", "10(3)/ul": "1e3/uL", "x10(9)/l": "1e9/L",
    "10(9)/l": "1e9/L", "10*3/l": "1e3/L", "10*6/ul": "1e6/uL", "x10*3/ul(cells)": "1e3/uL",
    "ml/min/{1.73m2}": "mL/min", "ml/min/1.73sqm": "mL/min", "ml/min/1.73m*2": "mL/min", "ml/min/1.73_m2": "mL/min",
    "ml/min/bsa": "mL/min", "kg": "kg", "[lb_av]": "lb", "lb": "lb", "lbs": "lb", "g": "g",
    "cm": "cm", "m": "m", "[in_i]": "inch", "in": "inch", "%": "percent", "percent": "percent",
    "10^9/l": "1e9/L", "10*9/l": "1e9/L", "x10^9/l": "1e9/L", "x10*9/l": "1e9/L", "10e9/l": "1e9/L",
    "giga/l": "1e9/L", "g/l(cells)": "1e9/L",
    "10^3/ul": "1e3/uL", "10*3/ul": "1e3/uL", "x10^3/ul": "1e3/uL", "k/ul": "1e3/uL", "10^3/mm3": "1e3/mm**3",
    "10*3/mm3": "1e3/mm**3",
    "cells/ul": "1/uL", "/ul": "1/uL", "cells/mm3": "1/mm**3", "/mm3": "1/mm**3", "cells/mm^3": "1/mm**3",
    "{cells}/ul": "1/uL", "{cells}/mm3": "1/mm**3",
    "g/dl": "g/dL", "g/l": "g/L", "mg/dl": "mg/dL", "mg/l": "mg/L", "umol/l": "umol/L", "µmol/l": "umol/L", "mmol/l": "mmol/L",
    "ml/min/1.73m2": "mL/min", "ml/min/{1.73_m2}": "mL/min", "ml/min/1.73m^2": "mL/min", "ml/min/1.73": "mL/min",
    "ml/min": "mL/min", "u/l": "U_per_L", "iu/l": "U_per_L", "[iu]/l": "U_per_L",
}
# Canonical units of jakinib's labs (knowledge/fields.py) as unit expressions.
CANONICAL: dict[str, str] = {
    "10^9/L": "1e9/L", "g/dL": "g/dL", "mL/min/1.73m2": "mL/min", "mL/min": "mL/min", "U/L": "U_per_L",
    "umol/L": "umol/L",
    "mg/dL": "mg/dL", "mg/L": "mg/L", "kg": "kg", "cm": "cm", "%": "percent",
}


# Unit expression -> (dimension, factor to the dimension's base unit). Bases: count per litre, g/L, mol/L, L/min,
# U/L (enzyme activity), kg, m, and 1 for percent. Factors are written out (1e9, not 1e3 / 1e-6) so they are exact.
UNITS: dict[str, tuple[str, float]] = {
    "1e9/L": ("count/volume", 1e9), "1e12/L": ("count/volume", 1e12), "1e3/L": ("count/volume", 1e3),
    "1e3/uL": ("count/volume", 1e9), "1e3/mm**3": ("count/volume", 1e9), "1e6/uL": ("count/volume", 1e12),
    "1/uL": ("count/volume", 1e6), "1/mm**3": ("count/volume", 1e6),
    "g/dL": ("mass/volume", 10.0), "g/L": ("mass/volume", 1.0), "mg/dL": ("mass/volume", 0.01),
    "mg/L": ("mass/volume", 0.001),
    "umol/L": ("amount/volume", 1e-6), "mmol/L": ("amount/volume", 1e-3),
    "mL/min": ("volume/time", 0.001),
    "U_per_L": ("enzyme-activity/volume", 1.0),
    "kg": ("mass", 1.0), "g": ("mass", 0.001), "lb": ("mass", 0.45359237),
    "m": ("length", 1.0), "cm": ("length", 0.01), "inch": ("length", 0.0254),
    "percent": ("dimensionless", 0.01),
}


def normalise_text(unit: str) -> str:
    """Spaces out, micro signs to 'u', superscripts to digits (case kept)."""
    text = re.sub(r"\s+", "", unit).replace("10³", "10^3").replace("10⁹", "10^9").replace("10⁶", "10^6")
    return (text.replace("\u03bc", "u").replace("\u00b5", "u").replace("³", "3")
            .replace("²", "2").replace("×", "x").replace("⁹", "9").replace("⁶", "6"))


def normalise(unit: str) -> str:
    """The pint expression for a written unit, or raise PatientError."""
    exact = normalise_text(unit)
    if exact in CASE_SENSITIVE:
        return CASE_SENSITIVE[exact]
    key = exact.lower()
    if key in ALIASES:
        return ALIASES[key]
    raise PatientError(f"unknown unit {unit!r}")


def convert(value: float, unit: str, to: str, molar_mass_g_mol: float | None = None) -> float:
    """Convert ``value`` from a written ``unit`` to a canonical unit (a key of CANONICAL).

    With ``molar_mass_g_mol``, molar concentrations (e.g. µmol/L creatinine) convert to mass ones (mg/dL).
    """
    return value * factor(normalise(unit), to, molar_mass_g_mol)


@cache
def factor(expression: str, to: str, molar_mass_g_mol: float | None = None) -> float:
    """The multiplier from a unit expression to a canonical unit (computed once per combination)."""
    target = CANONICAL.get(to, to)
    if expression not in UNITS or target not in UNITS:
        raise PatientError(f"unit {expression!r} cannot be converted to {to}")
    (src_dim, src), (dst_dim, dst) = UNITS[expression], UNITS[target]
    if src_dim == dst_dim:
        return src / dst
    if molar_mass_g_mol is not None and (src_dim, dst_dim) == ("amount/volume", "mass/volume"):
        return src * molar_mass_g_mol / dst
    raise PatientError(f"unit {expression!r} cannot be converted to {to}")


def candidates(lab_unit: str, molar_mass_g_mol: float | None = None) -> list[str]:
    """Written units that convert to ``lab_unit`` (for 'did you mean' hints; molar ones with a molar mass)."""
    seen, out = set(), []
    for written in ("g/L", "g/dL", "cells/mm3", "10^9/L", "mL/min", "U/L", "mg/dL", "µmol/L"):
        try:
            convert(1.0, written, lab_unit, molar_mass_g_mol)
        except PatientError:
            continue
        if written not in seen:
            seen.add(written)
            out.append(written)
    return out
