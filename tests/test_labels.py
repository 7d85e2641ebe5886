"""Data tests that scan every label and approval of the bundled knowledge base (issue 11, items 2-5 and 7).

Each test walks the whole data set, so a new drug or regulator is held to the same rules as the ones
that were read when the test was written.
"""

from __future__ import annotations

import re

import pytest

import jakinib

KB = jakinib.load()
ADULT = re.compile(r"\badults?\b", re.IGNORECASE)


def _approved():
    for row in KB.all_approvals():
        if row.approval.decision == "approved":
            yield row


# ---- item 2: ages ----------------------------------------------------------------------------------


def test_every_adult_approval_has_a_minimum_age():
    """An approval whose population says adult(s) carries the label's minimum age (adults = 18)."""
    missing = [f"{r.drug} {r.approval.regulator} {r.approval.indication}: {r.approval.population}"
               for r in _approved()
               if r.approval.population and ADULT.search(r.approval.population) and r.approval.min_age_years is None]
    assert not missing, "\n".join(missing)


def test_adult_only_populations_start_at_18():
    """'adults' alone (no younger group named) means 18, never a lower age."""
    wrong = []
    for r in _approved():
        pop = r.approval.population or ""
        younger = re.search(r"adolescent|paediatric|pediatric|child|years? (of age )?and older|years? and over|aged \d+", pop, re.I)
        if ADULT.search(pop) and not younger and r.approval.min_age_years is not None and r.approval.min_age_years < 18:
            wrong.append(f"{r.drug} {r.approval.regulator} {r.approval.indication}: {r.approval.min_age_years}")
    assert not wrong, wrong


def test_upadacitinib_ema_at_age_12_lists_only_what_a_12_year_old_may_get(cli):
    r = cli("approvals", "--drug", "upadacitinib", "--regulator", "EMA", "--age", "12", "--json")
    assert r.code == 0, r.err
    rows = r.json()
    assert rows, "atopic dermatitis is approved from 12 years"
    assert {row["indication"] for row in rows} == {"atopic-dermatitis"}
    assert all(row["min_age_years"] is not None and row["min_age_years"] <= 12 for row in rows)
    for adult_only in ("rheumatoid-arthritis", "ankylosing-spondylitis", "psoriatic-arthritis", "ulcerative-colitis",
                       "crohns-disease", "giant-cell-arteritis"):
        assert KB.approvals(drug="upadacitinib", regulator="EMA", indication=adult_only), adult_only
        assert not KB.approvals(drug="upadacitinib", regulator="EMA", indication=adult_only, age=12), adult_only


@pytest.mark.parametrize("age", [0, 11.9, 17.9])
def test_no_adult_only_approval_is_listed_for_a_child(age):
    for row in KB.approvals(age=age):
        pop = row.approval.population or ""
        assert not (ADULT.search(pop) and row.approval.min_age_years is None), (row.drug, row.approval.regulator, pop)
