"""The safety checker: a Patient in, one Assessment per drug out (rules are data)."""

from jakinib.safety.engine import check
from jakinib.safety.patient import Patient, parse_patient
from jakinib.safety.report import Assessment, Finding, Report

__all__ = ["Assessment", "Finding", "Patient", "Report", "check", "parse_patient"]
