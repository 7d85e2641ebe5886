"""Minimum ages verified this session (issue 11, item 2): each is read in two copies that agree, and an adult-only
approval is never listed for a child."""

from __future__ import annotations

import pytest

import jakinib

KB = jakinib.load()


@pytest.mark.parametrize(("regulator", "copies"), [
    ("TGA", {"rinvoq-nps-cmi-au", "rinvoq-au-cmi-2020-copy"}),
    ("HealthCanada", {"rinvoq-hc-ra-2020-telegram", "rinvoq-cadth-ra-2020"}),
])
def test_upadacitinib_rheumatoid_arthritis_is_for_adults_in_australia_and_canada(regulator, copies):
    (row,) = KB.approvals(drug="upadacitinib", regulator=regulator, indication="rheumatoid-arthritis")
    assert row.approval.min_age_years == 18
    assert copies <= {c.partition("#")[0] for c in row.approval.sources}
    first, second = sorted(copies)
    assert second in KB.sources[first].confirmed_by or first in KB.sources[second].confirmed_by
    assert not KB.approvals(drug="upadacitinib", regulator=regulator, indication="rheumatoid-arthritis", age=16)
    assert KB.approvals(drug="upadacitinib", regulator=regulator, indication="rheumatoid-arthritis", age=18)
