"""jakinib: the open, cited reference system for Janus kinase (JAK) inhibitors.

>>> import jakinib
>>> kb = jakinib.load()
>>> kb.drug("Rinvoq").name
'upadacitinib'
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jakinib.errors import InputError, JakinibError, KnowledgeError

if TYPE_CHECKING:
    from jakinib.cohort.screen import Screen
    from jakinib.knowledge import KnowledgeBase
    from jakinib.pharmacology.simulate import Simulation
    from jakinib.safety import Patient, Report

__version__ = "0.1.0"


@lru_cache(maxsize=4)
def load(data_dir: Path | None = None) -> KnowledgeBase:
    """The bundled (or given) knowledge base, validated; cached per folder."""
    from jakinib.knowledge import base, loader

    return base.build(Path(data_dir) if data_dir else loader.DATA_DIR)


def read_patient(data: Any, kb: KnowledgeBase | None = None, today: date | None = None) -> Patient:
    """A Patient from a Patient, a dict (simple JSON form or a FHIR Bundle) or a JSON file path.

    Files are read with a size limit and parsed strictly (:mod:`jakinib.jsonio`: duplicate keys,
    invalid Unicode and deep nesting are refused).
    """
    from jakinib.safety.patient import Patient, parse_patient

    if isinstance(data, Patient):
        return data
    kb = kb or load()
    if isinstance(data, (str, Path)):
        from jakinib.jsonio import read_json

        data = read_json(data)
    if isinstance(data, dict) and data.get("resourceType") is not None:
        from jakinib.interop.fhir import patient_from_bundle

        return patient_from_bundle(data, kb, today)
    return parse_patient(data, kb)


def check(
    patient: Any,
    drugs: list[str] | None = None,
    regulator: str = "FDA",
    indication: str | None = None,
    today: date | None = None,
) -> Report:
    """Assess JAK inhibitors for one patient under one regulator's labels.

    >>> import jakinib
    >>> report = jakinib.check({"age": 40, "sex": "male"}, drugs=["upadacitinib"], regulator="EMA")
    >>> report.assessments[0].drug
    'upadacitinib'
    """
    from jakinib.safety.engine import check as run

    kb = load()
    return run(kb, read_patient(patient, kb, today), drugs, regulator, indication, today)


def screen(source: str | Path, drugs: list[str] | None = None, regulators: list[str] | None = None,
           today: date | None = None, on_error: str = "stop", engine: str = "polars", master: str | None = None) -> Screen:
    """Screen a cohort (Bulk export folder, Bundle-per-line NDJSON, CSV or Parquet) with the checker's rules.

    Returns a :class:`~jakinib.cohort.screen.Screen`: ``rows`` (one per patient x regulator x drug: status, finding
    ids, screening missing, recommended and current dose, care gaps) and ``summary``.
    """
    from jakinib.cohort.screen import screen as run

    return run(source, load(), drugs, regulators or ["FDA"], today, on_error, engine, master)


def simulate(drug: str | None, dose_mg: float | None = None, every_h: float | None = None, route: str | None = None,
             population: int = 0, seed: int = 0, params: str | Path | None = None) -> Simulation:
    """A steady-state dosing day of one product: concentrations and % inhibition per JAK-STAT pathway.

    ``params`` is a YAML file of your own PK and potency parameters (see :mod:`jakinib.pharmacology.params`);
    the result is then marked ``user_supplied``.
    """
    from jakinib.pharmacology import params as user_params
    from jakinib.pharmacology.simulate import simulate as run

    user = user_params.read(Path(params)) if params is not None else None
    return run(load(), drug, dose_mg, every_h, route, population, seed, params=user)


__all__ = ["InputError", "JakinibError", "KnowledgeError", "__version__", "check", "load", "read_patient", "screen", "simulate"]
