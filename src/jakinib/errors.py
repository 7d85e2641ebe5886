"""Every error jakinib raises on purpose, and the one place that renders them.

    JakinibError                 base; carries a one-line, user-facing message
    ├── KnowledgeError           a data file is malformed or inconsistent (names file, record, field)
    └── InputError               bad user input
        ├── UnknownNameError     an unknown drug, regulator, indication, condition, medicine
        ├── PatientError         a malformed patient (JSON shape, missing or implausible unit)
        └── FhirError            a malformed FHIR resource or Bundle

The CLI turns any ``JakinibError`` into ``error: <message>`` on stderr and exit code 2; the web
app turns it into a 4xx JSON body ``{"error": {"type", "message"}}``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class JakinibError(Exception):
    """Base class: ``str(error)`` is a complete one-line message."""

    kind = "error"

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        return str(self)


class KnowledgeError(JakinibError):
    kind = "knowledge-error"


class InputError(JakinibError):
    kind = "input-error"


class UnknownNameError(InputError):
    """An unknown name; suggests close matches."""

    kind = "unknown-name"

    def __init__(self, what: str, name: str, known: Iterable[str]) -> None:
        close = difflib.get_close_matches(name.lower(), sorted(set(known)), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        super().__init__(f"unknown {what} {name!r}{hint}")
        self.name = name
        self.suggestions = close


class PatientError(InputError):
    kind = "patient-error"


class FhirError(InputError):
    kind = "fhir-error"


def error_body(error: JakinibError) -> dict[str, dict[str, str]]:
    """The JSON body for an error, the same over HTTP and ``--json``."""
    return {"error": {"type": error.kind, "message": error.message}}
