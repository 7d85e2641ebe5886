"""The patient facts a rule may read, and their value vocabularies (one source of truth for
the rule validator, the patient model and the cohort compiler)."""

from __future__ import annotations

NUMERIC = {"age": "years", "weight_kg": "kg", "height_cm": "cm"}
LAB_UNITS = {
    "anc": "10^9/L",
    "alc": "10^9/L",
    "platelets": "10^9/L",
    "hb": "g/dL",
    "egfr": "mL/min/1.73m2",
    "crcl": "mL/min",
    "alt": "U/L",
    "ast": "U/L",
    "creatinine": "mg/dL",
    "cystatin-c": "mg/L",
}
# Molar masses (g/mol) for labs that may be reported in molar units (creatinine C4H7N3O: 113.12).
MOLAR_MASS_G_MOL = {"creatinine": 113.12}
BOOLEAN = ("pregnant", "breastfeeding")
CHOICE = {
    "sex": ("female", "male"),
    "smoking": ("never", "former", "former-long-time", "current"),
    "indication": (),  # any indication slug
}
# conditions = current (active) conditions; history = past ones (resolved, inactive, in remission): a rule about
# "current or past" malignancy reads {any: [{field: conditions, has: malignancy}, {field: history, has: malignancy}]}.
# allergies = JAK inhibitor slugs with an active, confirmed AllergyIntolerance.
LISTS = ("conditions", "history", "allergies", "medication_classes", "vaccines_planned")
ENZYMES = ("CYP2C19", "CYP2C9")
METABOLIZER = ("poor", "intermediate", "normal", "rapid", "ultrarapid")
SCREENING_RESULTS = ("negative", "positive", "indeterminate", "not-done", "done")
INTERACTION_CLASSES = (
    "strong-cyp3a4-inhibitor",
    "moderate-cyp3a4-inhibitor",
    "strong-cyp3a4-inducer",
    "moderate-cyp3a4-inducer",
    "oat3-inhibitor",
    "strong-cyp2c19-inhibitor",
    "moderate-cyp2c19-inhibitor",
    "strong-cyp2c9-inhibitor",
    "moderate-cyp2c9-inhibitor",
    "strong-cyp2c19-inducer",
    "strong-cyp2c9-inducer",
    "cyp2c19-cyp2c9-inducer",  # moderate or strong inducer of CYP2C19 and/or CYP2C9 (abrocitinib EU wording)
    "dual-cyp3a4-cyp2c19-inhibitor",
    "strong-cyp1a2-inhibitor",
    "p-gp-inhibitor",
    "bcrp-substrate",
    "antiplatelet",
    "aspirin",  # kept apart from antiplatelet: labels exempt low-dose aspirin
    "anticoagulant",
    "biologic-dmard",
    "potent-immunosuppressant",
)
# Every label screening item's test is one of these (tests/test_fhir.py holds it), so each can be reported done.
SCREENING_TESTS = ("tuberculosis", "hepatitis-b", "hepatitis-c", "zoster-vaccine", "hiv", "pregnancy-test",
                   "complete-blood-count", "hepatic-panel", "coagulation", "ecg", "thiamine")


def kind_of(field: str) -> str | None:
    """'number', 'bool', 'choice', 'list', 'screening' or None for an unknown field."""
    if field in NUMERIC or (field.startswith("labs.") and field[5:] in LAB_UNITS):
        return "number"
    if field in BOOLEAN:
        return "bool"
    if field in CHOICE or (field.startswith("metabolizer.") and field[12:] in ENZYMES):
        return "choice"
    if field in LISTS:
        return "list"
    if field.startswith("screening.") and field[10:] in SCREENING_TESTS:
        return "screening"
    return None


def known_fields() -> list[str]:
    """Every field name a predicate may use."""
    return (
        list(NUMERIC)
        + [f"labs.{k}" for k in LAB_UNITS]
        + list(BOOLEAN)
        + list(CHOICE)
        + [f"metabolizer.{e}" for e in ENZYMES]
        + list(LISTS)
        + [f"screening.{t}" for t in SCREENING_TESTS]
    )
