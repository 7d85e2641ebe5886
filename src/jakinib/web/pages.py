"""Server-rendered pages (Jinja2): the seed article made live, drug pages, approvals, the checker and simulator.

Every clinical statement on a page comes from the knowledge base; templates hold only headings and UI text.
Citations are numbered per page (``cite``) and listed at the bottom with their titles and links.
"""

from __future__ import annotations

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
from jakinib.knowledge import fields, views
from jakinib.knowledge.schema import KINASES, REGULATORS
from jakinib.web import params

MAX_UPLOAD_BYTES = 5_000_000  # a FHIR Bundle for one patient; the app's body limit applies first

HERE = Path(__file__).parent
ENV = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), trim_blocks=True,
                  lstrip_blocks=True)
REGION_NAMES = {"FDA": "United States (FDA)", "EMA": "European Union (EMA)", "TGA": "Australia (TGA)", "PMDA": "Japan (PMDA)",
                "MHRA": "United Kingdom (MHRA)", "Medsafe": "New Zealand (Medsafe)", "HealthCanada": "Canada (Health Canada)",
                "NMPA": "China (NMPA)"}
GRADE_TITLE = {"primary": "verification grade: read in the issuer's own document",
               "transcription": "verification grade: read in a verbatim copy", "secondary": "verification grade: read in a summary or news report"}
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
        grade = jakinib.load().grade(sources)
        return Markup(f'<sup class="cite">[{links}]</sup><span class="grade grade-{grade}" '
                      f'title="{GRADE_TITLE[grade]}">{grade}</span>')

    def references(self) -> list[Any]:
        kb = jakinib.load()
        return [(i + 1, kb.sources[sid]) for i, sid in enumerate(self.order)]


def render(name: str, request: Request, status: int = 200, **context: Any) -> HTMLResponse:
    kb = jakinib.load()
    cite = Citations()
    html = ENV.get_template(name).render(request=request, kb=kb, cite=cite, regions=REGULATORS, region_names=REGION_NAMES,
                                         review_date=kb.review_date, version=jakinib.__version__, status_label=STATUS_LABEL,
                                         **context)
    return HTMLResponse(html, status_code=status)


def _region(value: str | None) -> str:
    kb = jakinib.load()
    try:
        return kb.regulator(value) if value else "FDA"
    except JakinibError:
        return "FDA"


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


def register(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        kb = jakinib.load()
        derm = [t for t in kb.indications.values() if t.dermatology and kb.approvals(indication=t.id)]
        return render("index.html", request, drugs=list(kb.drugs.values()), derm=derm)

    @app.get("/search", response_class=HTMLResponse, include_in_schema=False)
    def search_page(request: Request, q: str = "") -> Response:
        kb = jakinib.load()
        hits = kb.search(q, limit=100) if q.strip() else []
        if hits and hits[0]["exact"] and hits[0]["kind"] == "drug":  # a drug's name, brand or code: go to its page
            return RedirectResponse(hits[0]["url"], status_code=303)
        return render("search.html", request, q=q, hits=hits)

    @app.get("/jak-inhibitors", response_class=HTMLResponse, include_in_schema=False)
    def article(request: Request, region: str | None = None) -> HTMLResponse:
        kb = jakinib.load()
        reg = _region(region)
        facts = {}
        for f in kb.class_facts:
            facts.setdefault(f.topic, []).append(f)
        approvals = kb.approvals(regulator=reg)
        labels = [(d, lab) for d in kb.drugs.values() for lab in d.labels if lab.regulator == reg]
        return render("article.html", request, region=reg, article=ARTICLE, facts=facts, approvals=approvals, labels=labels,
                      evidence=kb.evidence)

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
        reg = _region(region) if region else None
        rows = kb.approvals(drug=d.name, decision=None)
        by_region: dict[str, list[Any]] = {}
        for r in rows:
            by_region.setdefault(r.approval.regulator, []).append(r)
        rules = [r for r in d.rules if reg is None or reg in r.regulators]
        labels = [lab for lab in d.labels if reg is None or lab.regulator == reg]
        return render("drug.html", request, d=d, region=reg, by_region=by_region, rules=rules, labels=labels,
                      summary=views.drug_summary(kb, d))

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
        matrix: dict[tuple[str, str], dict[str, list[Any]]] = {}
        for r in rows:
            matrix.setdefault((r.drug, r.approval.indication), {}).setdefault(r.approval.regulator, []).append(r)
        return render("approvals.html", request, status=400 if error else 200, rows=rows, matrix=sorted(matrix.items()), error=error,
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
        return render("check.html", request, form={}, report=None, error=None, fields=fields, chosen_conditions=[])

    @app.post("/check", response_class=HTMLResponse, include_in_schema=False)
    async def check_submit(request: Request) -> HTMLResponse:
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
        return render("check.html", request, status=400 if error else 200, form=form, report=report, error=error,
                      fields=fields, chosen_conditions=form.getlist("conditions"))

    @app.get("/pathways", response_class=HTMLResponse, include_in_schema=False)
    def pathways_page(request: Request) -> HTMLResponse:
        return render("pathways.html", request, pathways=jakinib.load().pathways)

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
