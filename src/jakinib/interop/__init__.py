"""Interoperability: FHIR R4 in, code systems."""
