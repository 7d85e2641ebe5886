"""Server-rendered pages (Jinja2): the seed article made live, drug pages, approvals, the checker and simulator.

Every clinical statement on a page comes from the knowledge base; templates hold only headings and UI text.
Citations are numbered per page (``cite``) and listed at the bottom with their titles and links.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.datastructures import UploadFile

import jakinib
from jakinib.errors import InputError, JakinibError
from jakinib.jsonio import loads_strict
from jakinib.knowledge import fields, provenance, views
from jakinib.knowledge.schema import KINASES, REGULATORS
from jakinib.web import params, pathway_svg

MAX_UPLOAD_BYTES = 5_000_000  # a FHIR Bundle for one patient; the app's body limit applies first

HERE = Path(__file__).parent
ENV = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), trim_blocks=True,
                  lstrip_blocks=True)
REGION_NAMES = {"FDA": "United States (FDA)", "EMA": "European Union (EMA)", "TGA": "Australia (TGA)", "PMDA": "Japan (PMDA)",
                "MHRA": "United Kingdom (MHRA)", "Medsafe": "New Zealand (Medsafe)", "HealthCanada": "Canada (Health Canada)",
                "NMPA": "China (NMPA)"}
GRADE_TITLE = {"primary": "verification grade: read in the issuer's own document",
               "transcription": "verification grade: read in a verbatim copy", "secondary": "verification grade: read in a summary or news report"}
CONFIRMED_TITLE = "confirmed: a second, independent copy read separately agrees (see References)"
# The schema's drug classes (knowledge/schema.py DrugClass) as a reader says them.
CLASS_NAME = {"pan-jak": "Pan-JAK inhibitor", "selective": "Selective JAK inhibitor",
              "allosteric-tyk2": "Allosteric TYK2 inhibitor", "jak3-tec-covalent": "Covalent JAK3/TEC-family kinase inhibitor"}
STATUS_LABEL = {"contraindicated": "Contraindicated", "do-not-start": "Do not start", "avoid": "Avoid", "caution": "Caution", "ok": "OK"}
# Section headings of the seed article, in its order, with the class-fact topics each one shows.
ARTICLE = [("Introduction", ["definition"]), ("Uses", ["uses"]), ("Mechanism and classification", ["mechanism", "classification"]),
           ("Contraindications", []), ("Benefits", ["benefits"]), ("Disadvantages", ["disadvantages"]),
           ("Side effects and risks", ["risks"]), ("More information", ["more-information"])]


class Citations:
    """Numbers sources in order of first use on one page."""

    def __init__(self) -> None:
        self.order: list[str] = []

    def __call__(self, sources: Any) -> Markup:
        nums = []
        for cite in sources or []:
            sid = cite.partition("#")[0]
            if sid not in self.order:
                self.order.append(sid)
            nums.append(self.order.index(sid) + 1)
        if not nums:
            return Markup("")
        links = ",".join(f'<a href="#ref-{n}">{n}</a>' for n in sorted(set(nums)))
        kb = jakinib.load()
        grade = kb.grade(sources)
        agreed = (f'<span class="confirmed" title="{CONFIRMED_TITLE}">confirmed</span>'
                  if provenance.confirmed(kb.sources, sources) else "")
        return Markup(f'<sup class="cite">[{links}]</sup><span class="grade grade-{grade}" '
                      f'title="{GRADE_TITLE[grade]}">{grade}</span>{agreed}')

    def references(self) -> list[Any]:
        kb = jakinib.load()
        return [(i + 1, kb.sources[sid]) for i, sid in enumerate(self.order)]

    def relations(self, src: Any) -> list[str]:
        """How a listed source stands to the independent copies it was checked against: which agree, which differ
        and which of the two jakinib follows (the reasons are in ``jakinib kb review``)."""
        kb = jakinib.load()

        def title(cite: str) -> str:
            other = kb.sources.get(cite.partition("#")[0])
            return str(other.title) if other else cite

        out = [f"Agrees with an independent copy: {title(c)}." for c in src.confirmed_by]
        for dis in src.disagrees_with:
            follows = "; jakinib follows this source" if dis.followed == src.id else ", which jakinib follows"
            out.append(f"Differs from {title(dis.source)}{follows}.")
        return out


def render(name: str, request: Request, status: int = 200, **context: Any) -> HTMLResponse:
    kb = jakinib.load()
    cite = Citations()
    html = ENV.get_template(name).render(request=request, kb=kb, cite=cite, regions=REGULATORS, region_names=REGION_NAMES,
                                         review_date=kb.review_date, version=jakinib.__version__, status_label=STATUS_LABEL, class_name=CLASS_NAME,
                                         grade_title=GRADE_TITLE, **context)
    return HTMLResponse(html, status_code=status)


REGION_COOKIE = "jakinib_region"
REGION_MAX_AGE_S = 365 * 24 * 3600


def _region(value: str | None, fallback: str = "FDA") -> str:
    kb = jakinib.load()
    try:
        return kb.regulator(value) if value else fallback
    except JakinibError:
        return fallback


def chosen_region(request: Request, value: str | None) -> str:
    """The region a page shows: ``?region=`` first, then the one remembered in the cookie, then the server's default."""
    settings = getattr(request.app.state, "settings", None)
    default = getattr(settings, "default_region", "FDA")
    return _region(value or request.cookies.get(REGION_COOKIE), _region(default))


def remember_region(response: Response, request: Request, value: str | None, region: str) -> Response:
    """An explicit ``?region=`` choice is remembered for every page (a cookie; no script needed); an unknown one is not."""
    if value and _region(value, "") == region and request.cookies.get(REGION_COOKIE) != region:
        response.set_cookie(REGION_COOKIE, region, max_age=REGION_MAX_AGE_S, path="/", samesite="lax", httponly=True)
    return response


def term(slug: str) -> str:
    """A test or topic slug as a reader sees it (the knowledge base's display names: 'hepatitis-b' -> 'Hepatitis B')."""
    return jakinib.load().display_name(str(slug))


def terms(slugs: Any) -> str:
    """Several slugs as one phrase, in sentence case ('Serious infections, mortality, MACE (major adverse ...)')."""
    kb = jakinib.load()
    return ", ".join(kb.display_name(str(x), start=i == 0) for i, x in enumerate(slugs))


def brand_name(product: Any, regulator: str | None = None) -> str:
    """The brand a product is sold under by ``regulator`` (else its first brand, else its formulation)."""
    for b in product.brands:
        if regulator is None or not b.regulators or regulator in b.regulators:
            return str(b.name)
    return str(product.brands[0].name) if product.brands else str(product.formulation)


def _brand_of(product_id: str, regulator: str | None = None) -> str:
    _, product = jakinib.load().product(product_id)
    return brand_name(product, regulator)


def _selectivity_svg(drug: Any) -> Markup:
    """A small bar chart of enzyme IC50 per kinase (log scale); absent values say 'not verified'."""
    values = {t.kinase: t.ic50_nM for t in drug.targets}
    known = [v for v in values.values() if v]
    if not known:
        return Markup('<p class="muted">No verified enzyme IC50 values are recorded for this drug.</p>')
    import math

    lo, hi = math.log10(min(known) / 2), math.log10(max(max(known) * 2, 10))
    rows = []
    for i, k in enumerate(KINASES):
        v = values.get(k)
        y = 10 + i * 28
        rows.append(f'<text x="0" y="{y + 14}" class="lbl">{k}</text>')
        if v:
            w = 20 + 300 * (math.log10(v) - lo) / (hi - lo)
            rows.append(f'<rect x="60" y="{y}" width="{w:.0f}" height="18" class="bar"><title>{k}: {v:g} nM</title></rect>'
                        f'<text x="{66 + w:.0f}" y="{y + 14}" class="val">{v:g} nM</text>')
        else:
            rows.append(f'<text x="60" y="{y + 14}" class="val muted">{"not verified" if k in values else "not a target"}</text>')
    body = "".join(rows)
    return Markup(f'<svg class="chart" viewBox="0 0 460 125" role="img" aria-label="Enzyme IC50 by kinase (longer bar = '
                  f'weaker inhibition)">{body}</svg>')


ENV.globals["selectivity_svg"] = _selectivity_svg
ENV.globals["brand_of"] = _brand_of
ENV.filters["term"] = term
ENV.filters["terms"] = terms


def register(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        kb = jakinib.load()
        derm = [t for t in kb.indications.values() if t.dermatology and kb.approvals(indication=t.id)]
        brands = {d.name: views.drug_summary(kb, d)["brands"] for d in kb.drugs.values()}  # every brand, each once
        return render("index.html", request, drugs=list(kb.drugs.values()), derm=derm, brands=brands)

    @app.get("/search", response_class=HTMLResponse, include_in_schema=False)
    def search_page(request: Request, q: str = "") -> Response:
        kb = jakinib.load()
        hits = kb.search(q, limit=100) if q.strip() else []
        if hits and hits[0]["exact"] and hits[0]["kind"] == "drug":  # a drug's name, brand or code: go to its page
            return RedirectResponse(hits[0]["url"], status_code=303)
        return render("search.html", request, q=q, hits=hits)

    @app.get("/jak-inhibitors", response_class=HTMLResponse, include_in_schema=False)
    def article(request: Request, region: str | None = None) -> Response:
        kb = jakinib.load()
        reg = chosen_region(request, region)
        facts = {}
        for f in kb.class_facts:
            facts.setdefault(f.topic, []).append(f)
        approvals = kb.approvals(regulator=reg)
        labels = [(d, lab) for d in kb.drugs.values() for lab in d.labels if lab.regulator == reg]
        response = render("article.html", request, region=reg, article=ARTICLE, facts=facts, approvals=approvals,
                          labels=labels, evidence=kb.evidence)
        return remember_region(response, request, region, reg)

    @app.get("/drugs", include_in_schema=False)
    def drugs_index() -> RedirectResponse:
        return RedirectResponse("/approvals", status_code=303)

    @app.get("/drugs/{name}", response_class=HTMLResponse, include_in_schema=False)
    def drug_page(request: Request, name: str, region: str | None = None) -> Response:
        kb = jakinib.load()
        try:
            d = kb.drug(name)
        except JakinibError as exc:
            return render("error.html", request, message=str(exc), status=404)
        if d.name != name:
            return RedirectResponse(f"/drugs/{d.name}" + (f"?region={region}" if region else ""), status_code=303)
        reg = chosen_region(request, region)
        rows = [r for r in kb.approvals(drug=d.name, decision=None) if r.approval.regulator == reg]
        rules = [r for r in d.rules if reg in r.regulators]
        labels = [lab for lab in d.labels if lab.regulator == reg]
        response = render("drug.html", request, d=d, region=reg, rows=rows, rules=rules, labels=labels,
                          summary=views.drug_summary(kb, d), glance=_at_a_glance(kb, d, reg))
        return remember_region(response, request, region, reg)

    @app.get("/approvals", response_class=HTMLResponse, include_in_schema=False)
    def approvals_page(request: Request, drug: str | None = None, regulator: str | None = None, indication: str | None = None,
                       age: str | None = None) -> HTMLResponse:
        kb = jakinib.load()
        error = None
        try:
            age_v = params.read("age", age, params.Age)
            rows = kb.approvals(drug or None, regulator or None, indication or None, age_v)
        except JakinibError as exc:
            rows, error = [], str(exc)
        matrix: dict[str, dict[str, dict[str, list[Any]]]] = {}
        for r in rows:
            matrix.setdefault(r.drug, {}).setdefault(r.approval.indication, {}).setdefault(r.approval.regulator, []).append(r)
        groups = [(d, sorted(inds.items(), key=lambda kv: kb.indications[kv[0]].label)) for d, inds in sorted(matrix.items())]
        columns = [reg for reg in REGULATORS if any(r.approval.regulator == reg for r in rows)]
        brands: dict[str, list[str]] = {}
        for r in rows:  # a drug sold under one brand names it once, beside the drug; several brands: in each cell
            name = _brand_of(r.product, r.approval.regulator)
            if name not in brands.setdefault(r.drug, []):
                brands[r.drug].append(name)
        return render("approvals.html", request, status=400 if error else 200, rows=rows, groups=groups, columns=columns,
                      brands_by_drug=brands,
                      n_rows=sum(len(inds) for _, inds in groups), error=error,
                      f={"drug": drug or "", "regulator": regulator or "", "indication": indication or "", "age": age or ""})

    @app.get("/compare", response_class=HTMLResponse, include_in_schema=False)
    def compare_page(request: Request, drugs: str = "tofacitinib,baricitinib,upadacitinib,abrocitinib") -> HTMLResponse:
        kb = jakinib.load()
        error = None
        try:
            chosen = [kb.drug(n.strip()) for n in drugs.split(",") if n.strip()]
        except JakinibError as exc:
            chosen, error = [], str(exc)
        return render("compare.html", request, chosen=chosen, data=views.compare_json(kb, chosen), drugs=drugs, error=error)

    @app.get("/check", response_class=HTMLResponse, include_in_schema=False)
    def check_form(request: Request) -> HTMLResponse:
        return render("check.html", request, form={"regulator": chosen_region(request, None)}, report=None, error=None,
                      fields=fields, chosen_conditions=[], screening_choices=_screening_choices())

    @app.post("/check", response_class=HTMLResponse, include_in_schema=False)
    async def check_submit(request: Request) -> Response:
        form = await request.form()
        error, report = None, None
        try:
            upload = form.get("bundle")
            if isinstance(upload, UploadFile) and upload.filename:  # Starlette's UploadFile: what the form yields
                raw = await upload.read(MAX_UPLOAD_BYTES + 1)
                if len(raw) > MAX_UPLOAD_BYTES:
                    raise InputError(f"{upload.filename}: larger than {MAX_UPLOAD_BYTES} bytes")
                if not raw.strip():
                    raise InputError(f"{upload.filename}: the file is empty")
                try:
                    patient: Any = loads_strict(raw)
                except JakinibError as exc:
                    raise InputError(f"{upload.filename}: {exc}") from None
            else:
                patient = _patient_from_form(form)
            drugs = [d for d in form.getlist("drug") if d] or None
            report = jakinib.check(patient, drugs=drugs, regulator=str(form.get("regulator") or "FDA"),
                                   indication=str(form.get("indication") or "") or None)
        except JakinibError as exc:
            error = str(exc)
        response = render("check.html", request, status=400 if error else 200, form=form, report=report, error=error,
                          fields=fields, chosen_conditions=form.getlist("conditions"), screening_choices=_screening_choices())
        chosen = str(form.get("regulator") or "")
        return remember_region(response, request, chosen, _region(chosen)) if report else response

    @app.get("/pathways", response_class=HTMLResponse, include_in_schema=False)
    def pathways_page(request: Request) -> HTMLResponse:
        kb = jakinib.load()
        overlays = _pathway_overlays()
        return render("pathways.html", request, pathways=kb.pathways, overlays=overlays,
                      diagram=Markup(pathway_svg.pathway_svg(kb.pathways, overlays)))

    @app.get("/simulate", response_class=HTMLResponse, include_in_schema=False)
    def simulate_page(request: Request, drug: str | None = None, dose: str | None = None, every: str | None = None) -> HTMLResponse:
        from jakinib.pharmacology import plots
        from jakinib.pharmacology.simulate import DEFAULT_DRUG, reach, simulable, simulate

        kb = jakinib.load()
        sim, svg, error = None, None, None
        drug = drug or DEFAULT_DRUG
        if drug:
            try:
                sim = simulate(kb, drug, params.read("dose", dose, params.DoseMg), params.read("every", every, params.EveryH),
                               with_curve=True)
                svg = Markup(plots.concentration_svg(sim))
            except JakinibError as exc:
                error = str(exc)
        names = list(dict.fromkeys(name for name, _ in simulable(kb)))
        return render("simulate.html", request, status=400 if error else 200, sim=sim, svg=svg, error=error, simulable=names,
                      reach=reach(kb),
                      f={"drug": drug or "", "dose": dose or "", "every": every or ""})


@functools.cache
def _pathway_overlays() -> list[pathway_svg.Overlay]:
    """Each simulable drug's average inhibition per pathway at its usual regimen (computed once per process)."""
    from jakinib.pharmacology.simulate import simulable, simulate

    kb = jakinib.load()
    out = []
    for name in dict.fromkeys(name for name, _ in simulable(kb)):
        try:
            sim = simulate(kb, name)
        except JakinibError:
            continue
        if any(p.avg_inhibition_pct is not None for p in sim.pathways):
            out.append(pathway_svg.Overlay(sim.drug, f"{sim.dose_mg:g} mg every {sim.every_h:g} h",
                                           {p.cytokine: p.avg_inhibition_pct for p in sim.pathways}))
    return out


def _screening_choices() -> dict[str, tuple[str, ...]]:
    """The answers the checker offers per screening item, read from the screening vocabulary: an item whose codes
    record it as ``done`` (a vaccine, a panel) is done / not done; the others have a result. An item the vocabulary
    does not cover offers every value."""
    kb = jakinib.load()
    values: dict[str, set[Any]] = {}
    for code in kb.codes:
        if code.field.startswith("screening."):
            values.setdefault(code.field.removeprefix("screening."), set()).add(code.value)
    results = ("negative", "positive", "indeterminate")
    out = {}
    for test in fields.SCREENING_TESTS:
        seen = values.get(test)
        out[test] = ("done",) if seen == {"done"} else results if seen else (*results, "done")
    return out


def _at_a_glance(kb: Any, d: Any, region: str) -> dict[str, Any]:
    """The drug page's summary for one region: boxed warnings, approved indications with their usual dose, checks."""
    labels = [lab for lab in d.labels if lab.regulator == region]
    boxed: dict[tuple[str, ...], dict[str, Any]] = {}  # one box per distinct warning, naming every brand it covers
    for lab in labels:
        if lab.boxed_warning:
            box = boxed.setdefault(tuple(lab.boxed_warning.topics), {"topics": lab.boxed_warning.topics, "brands": [],
                                                                     "sources": [], "product": lab.product})
            box["brands"] += [b for b in [_brand_of(lab.product, region)] if b not in box["brands"]]
            box["sources"] += [c for c in lab.boxed_warning.sources if c not in box["sources"]]
    approved = kb.approvals(drug=d.name, regulator=region)
    indications: dict[str, dict[str, Any]] = {}
    for row in sorted(approved, key=lambda r: r.sort_key):
        entry = indications.setdefault(row.approval.indication, {"label": kb.indications[row.approval.indication].label,
                                                                 "ages": {}, "doses": [], "gaps": []})
        age = entry["ages"].setdefault((row.approval.min_age_years, _brand_of(row.product, region)), [])
        age += [c for c in row.approval.sources if c not in age]
        lab = kb.label(row.product, region)
        if lab is None:
            continue
        brand = _brand_of(row.product, region)
        entry["doses"] += [(brand, x) for x in lab.doses
                           if x.indication == row.approval.indication and (brand, x) not in entry["doses"]]
        entry["gaps"] += [g for g in lab.doses_not_recorded if g.indication == row.approval.indication and g not in entry["gaps"]]
    checks: dict[str, Any] = {}
    for lab in labels:
        for item in lab.screening:
            if item.test not in checks or (item.blocking and not checks[item.test].blocking):
                checks[item.test] = item
    products = {r.product for r in approved} or {p.id for p in d.products}
    elsewhere = sorted({lab.regulator for lab in d.labels if lab.boxed_warning and lab.regulator != region})
    others = {r.approval.regulator for r in kb.approvals(drug=d.name)} | {lab.regulator for lab in d.labels}
    for entry in indications.values():
        entry["several_brands"] = len({brand for brand, _ in entry["doses"]}) > 1
    return {"boxed": list(boxed.values()), "boxed_elsewhere": elsewhere, "indications": list(indications.values()),
            "checks": sorted(checks.values(), key=lambda i: (not i.blocking, i.test)),
            "forms": [(brand_name(p, region), p.formulation) for p in d.products if p.id in products],
            "other_regions": [r for r in REGULATORS if r in others and r != region]}


def _patient_from_form(form: Any) -> dict[str, Any]:
    """The simple patient JSON from the checker form (empty fields are left out: unknown, never 'ok')."""
    def text(key: str) -> str:
        return str(form.get(key) or "").strip()

    patient: dict[str, Any] = {}
    for key, kind in (("age", params.Age), ("weight_kg", params.WeightKg)):
        if text(key):
            patient[key] = params.read(key, text(key), kind)
    for key in ("sex", "smoking"):
        if text(key):
            patient[key] = text(key)
    for key in ("pregnant", "breastfeeding"):
        if text(key) in ("yes", "no"):
            patient[key] = text(key) == "yes"
    patient["conditions"] = [c for c in form.getlist("conditions") if c]
    meds = text("medications")
    patient["medications"] = [m.strip() for m in meds.replace("\n", ",").split(",") if m.strip()]
    labs: dict[str, Any] = {}
    for lab in fields.LAB_UNITS:
        value = text(f"lab_{lab}")
        if value:
            number = params.read(f"labs.{lab}", value, params.Number)
            unit = text(f"unit_{lab}")
            labs[lab] = {"value": number, "unit": unit} if unit else number
    patient["labs"] = labs
    patient["screening"] = {t: text(f"screen_{t}") for t in fields.SCREENING_TESTS if text(f"screen_{t}")}
    return patient
