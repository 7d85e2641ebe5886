"""Seed coverage: every factual claim of the DermNet seed article, answered through the query API.

Each test names the claim. Where the seed is imprecise against a primary source, the test asserts
what the primary source says *and* that the discrepancy is recorded (a note citing the seed).
"""

from __future__ import annotations

import jakinib

KB = jakinib.load()
FACTS = {f.id: f for f in KB.class_facts}


def dates(drug, regulator, indication, decision="approved"):
    return sorted(r.approval.date or "" for r in KB.approvals(drug=drug, regulator=regulator, indication=indication,
                                                                 decision=decision))


def has_note(drug: str, *words: str) -> bool:
    return any(all(w.lower() in n.text.lower() for w in words) and "seed" in " ".join(n.sources) + n.text.lower()
               for n in KB.drug(drug).notes)


def test_definition_small_molecules_interrupting_jak_stat():
    f = FACTS["definition"]
    assert "jakinibs" in f.data["synonyms"] and f.data["pathway"] == "JAK-STAT" and f.data["molecule"] == "small-molecule"
    assert any(h["id"] == "definition" for h in KB.search("jakinibs"))


def test_skin_joints_gut():
    assert FACTS["organ-systems"].data["systems"] == ["skin", "joints", "gastrointestinal-tract"]
    derm = {i for i, t in KB.indications.items() if t.dermatology}
    joints = {"rheumatoid-arthritis", "psoriatic-arthritis", "ankylosing-spondylitis", "juvenile-idiopathic-arthritis"}
    gut = {"ulcerative-colitis", "crohns-disease"}
    approved = {r.approval.indication for r in KB.approvals()}
    assert approved & derm and approved & joints and approved & gut


def test_jak_mutation_neoplasms():
    assert set(FACTS["jak-mutation-neoplasms"].data["indications"]) == {"polycythaemia-vera", "essential-thrombocythaemia", "myelofibrosis"}
    assert dates("ruxolitinib", "FDA", "myelofibrosis") and dates("ruxolitinib", "FDA", "polycythaemia-vera")
    assert any(e.indication == "essential-thrombocythaemia" for e in KB.evidence)


def test_tofacitinib_fda_ra_2012_psa_2017_uc_2018():
    assert dates("tofacitinib", "FDA", "rheumatoid-arthritis")[0].startswith("2012")
    assert dates("tofacitinib", "FDA", "psoriatic-arthritis")[0].startswith("2017")
    assert dates("tofacitinib", "FDA", "ulcerative-colitis")[0].startswith("2018")


def test_tofacitinib_off_label_psoriasis_and_investigational_ad_vitiligo():
    levels = {(e.drug, e.indication): e.level for e in KB.evidence}
    assert levels[("tofacitinib", "psoriasis")] == "off-label"
    assert levels[("tofacitinib", "atopic-dermatitis")] == "investigational"
    assert levels[("tofacitinib", "vitiligo")] == "investigational"
    assert not KB.approvals(drug="tofacitinib", indication="psoriasis")  # not approved anywhere


def test_ruxolitinib_tga_2013_myelofibrosis():
    assert dates("ruxolitinib", "TGA", "myelofibrosis")[0].startswith("2013")


def test_ruxolitinib_cream_fda_ad_2021_and_vitiligo_2022_from_12():
    ad = KB.approvals(drug="ruxolitinib", regulator="FDA", indication="atopic-dermatitis")
    assert any(r.route == "topical" and r.approval.date.startswith("2021") for r in ad)
    vit = KB.approvals(drug="ruxolitinib", regulator="FDA", indication="vitiligo")
    assert any(r.route == "topical" and r.approval.date.startswith("2022") and r.approval.min_age_years == 12 for r in vit)
    assert KB.approvals(drug="ruxolitinib", regulator="FDA", indication="vitiligo", age=12)


def test_baricitinib_tga_ra_and_ad_and_eu_japan_ad():
    assert KB.approvals(drug="baricitinib", regulator="TGA", indication="rheumatoid-arthritis")
    assert KB.approvals(drug="baricitinib", regulator="TGA", indication="atopic-dermatitis")
    assert KB.approvals(drug="baricitinib", regulator="EMA", indication="atopic-dermatitis")
    assert KB.approvals(drug="baricitinib", regulator="PMDA", indication="atopic-dermatitis")
    assert has_note("baricitinib", "TGA")  # the seed's 2018/2021 TGA years are recorded as unverified


def test_upadacitinib_medsafe_and_fda_2022_ad():
    assert KB.approvals(drug="upadacitinib", regulator="Medsafe", indication="atopic-dermatitis")
    assert dates("upadacitinib", "FDA", "atopic-dermatitis")[0].startswith("2022")


def test_abrocitinib_and_upadacitinib_ad_usa_europe_seed_says_2023_primary_says_earlier():
    assert dates("abrocitinib", "FDA", "atopic-dermatitis")[0] == "2022-01-14"
    assert dates("abrocitinib", "EMA", "atopic-dermatitis")[0].startswith("2021")
    assert dates("upadacitinib", "EMA", "atopic-dermatitis")[0].startswith("2021")
    assert has_note("abrocitinib", "2023") and has_note("upadacitinib", "2023")


def test_delgocitinib_japan_2020_ad_adults_and_fda_fast_track_hand_eczema():
    jp = KB.approvals(drug="delgocitinib", regulator="PMDA", indication="atopic-dermatitis")
    assert any(r.approval.date.startswith("2020") for r in jp)
    fast = KB.approvals(drug="delgocitinib", regulator="FDA", indication="chronic-hand-eczema", decision="designation")
    assert fast and fast[0].approval.date.startswith("2020")
    assert has_note("delgocitinib", "ointment")  # seed says 'cream'; the 2020 Japanese product is an ointment


def test_case_report_dermatoses():
    case = {e.indication for e in KB.evidence if e.level == "case-reports"}
    assert case == {"chronic-actinic-dermatitis", "dress", "hypereosinophilic-syndrome", "morphoea",
                    "eosinophilic-fasciitis", "hidradenitis-suppurativa"}
    assert KB.indication("drug hypersensitivity syndrome").id == "dress"


def test_four_kinases_phosphorylation_atp_overexpression():
    assert FACTS["kinase-family"].data["kinases"] == ["JAK1", "JAK2", "JAK3", "TYK2"]
    assert {t.kinase for d in KB.drugs.values() for t in d.targets} == {"JAK1", "JAK2", "JAK3", "TYK2"}
    assert FACTS["phosphorylation"].data["substrates"] == ["cytokine-receptors", "STATs"]
    assert FACTS["atp-pocket"].data["phosphate_donor"] == "ATP"
    assert set(FACTS["overexpression"].data["consequences"]) == {"autoimmune-disease", "malignancy"}


def test_classification_every_drug_has_a_class():
    assert {d.drug_class for d in KB.drugs.values()} <= set(FACTS["classification"].data["classes"])
    assert KB.drug("tofacitinib").drug_class == "pan-jak" and KB.drug("deucravacitinib").drug_class == "allosteric-tyk2"
    assert "singh-2020-itt" in FACTS["classification"].sources


def test_oral_and_topical_unlike_injected_biologics_and_cheaper():
    assert FACTS["small-molecule-routes"].data["biologics_route"] == "injection"
    routes = {p.route for d in KB.drugs.values() for p in d.products}
    assert routes == {"oral", "topical"}
    assert FACTS["cost"].data["relative_cost_vs_biologics"] == "lower"


def test_multiple_cytokines_and_relapse_after_stopping():
    assert FACTS["multiple-cytokines"].data["specificity"] == "multiple-cytokine-receptors"
    assert set(FACTS["relapse-after-stopping"].data["indications"]) == {"alopecia-areata", "vitiligo", "psoriasis"}


def test_infections_tb_screening_and_zoster_vaccination():
    assert set(FACTS["serious-infections"].data["pathogens"]) == {"bacterial", "fungal", "mycobacterial", "viral"}
    assert FACTS["tuberculosis-screening"].data == {"screening": "tuberculosis", "when": "before-start"}
    assert FACTS["herpes-zoster"].data["prevention"] == "zoster-vaccine"
    for drug in ("tofacitinib", "baricitinib", "upadacitinib", "abrocitinib"):
        fda = [lab for lab in KB.drug(drug).labels if lab.regulator == "FDA" and lab.screening]
        assert any(item.test == "tuberculosis" for lab in fda for item in lab.screening), drug


def test_jak2_cytopenias():
    assert FACTS["jak2-cytopenias"].data["kinase"] == "JAK2"
    jak2_homodimer = [p for p in KB.pathways if p.jaks == ["JAK2", "JAK2"]]
    assert {"EPO", "TPO", "GM-CSF"} <= {p.cytokine for p in jak2_homodimer}


def test_fda_2021_boxed_warning_for_baricitinib_and_upadacitinib_in_line_with_tofacitinib():
    fact = FACTS["fda-2021-boxed-warning"]
    assert fact.data["year"] == 2021 and set(fact.data["drugs"]) == {"tofacitinib", "baricitinib", "upadacitinib"}
    assert "fda-dsc-2021-jaki" in fact.sources and "oral-surveillance-2022" in fact.sources
    for drug in fact.data["drugs"]:
        topics = {t for lab in KB.drug(drug).labels if lab.regulator == "FDA" and lab.boxed_warning
                  for t in lab.boxed_warning.topics}
        assert {"mace", "thrombosis", "mortality", "malignancy"} <= topics, drug


def test_t_cell_lymphoma_rare_causality_not_established():
    assert FACTS["t-cell-lymphoma"].data == {"malignancy": "T-cell lymphoma", "frequency": "rare", "causality": "not-established"}


def test_national_datasheet_sources():
    data = FACTS["datasheets"].data
    assert {a["short"] for a in data["agencies"]} == {"TGA", "FDA", "MHRA", "Medsafe"}
    assert {f["short"] for f in data["formularies"]} == {"NZF", "NZFC", "BNF", "BNFC"}
    assert {a["regulator"] for a in data["agencies"]} <= set(jakinib.knowledge.schema.REGULATORS)


def test_every_seed_fact_cites_the_seed_or_a_primary_source():
    for f in KB.class_facts:
        assert f.sources
    cited = {c.partition("#")[0] for f in KB.class_facts for c in f.sources}
    assert "seed" in cited
