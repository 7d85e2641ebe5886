"""Cohort screening: a table of patients (flat CSV/Parquet, Bundle NDJSON or a FHIR Bulk export) through the
checker's own rules, compiled to column expressions (Polars on one machine, Spark on a cluster).

    read.py      inputs -> the cohort table (the FHIR forms go through interop/fhir.py, patient by patient)
    flatten.py   the cohort table's columns: one declarative definition both engines run
    compile.py   predicate trees and the engine's assessment -> column expressions (one compiler, two backends)
    gaps.py      care gaps over time for the current JAK inhibitor (screening before start, monitoring schedule)
    screen.py    orchestration: read -> assess every drug -> gaps -> rows and summary
    report.py    a standalone HTML report with inline SVG charts
    generate.py  a deterministic synthetic cohort in all three input forms
"""
