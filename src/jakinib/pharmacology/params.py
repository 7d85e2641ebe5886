"""User-supplied pharmacology: a YAML file of PK and potency parameters for ``simulate --params``.

The file is validated like the knowledge base (the same PK and pop-PK models, units in the field
names, ranges, unknown keys refused, a source for every block of numbers), and every result made
from it is marked ``user_supplied``: jakinib has not reviewed it.

```yaml
drug: upadacitinib                # a knowledge-base drug, or any name for a drug it does not hold
pk:                               # the knowledge base's PK record fields (docs/knowledge-base.md)
  dose_mg: 15
  every_h: 24
  mw_g_mol: 380.4
  half_life_h: 9
  tmax_h: 2
  cl_f_l_h: 40
  sources: ["Author et al. 2020, doi:10.xxxx/yyyy, table 2"]
potency:                          # one IC50 per cytokine pathway (names as in `jakinib pathways`)
  - {cytokine: IL-6, ic50_nM: 50, matrix: whole-blood, readout: pSTAT3 in CD4+ T cells, sources: ["..."]}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from jakinib.knowledge import loader
from jakinib.knowledge import schema as s

UserSources = Annotated[list[Annotated[str, Field(min_length=3)]], Field(min_length=1)]
USER_CITATION = "user-supplied"


class UserPopPK(s.PopPK):
    """A published pop-PK model, as in the knowledge base, with free-text sources."""

    sources: UserSources  # type: ignore[assignment]


class UserPK(s.PK):
    """A PK record, as in the knowledge base, with free-text sources; ``product`` is optional here."""

    product: str = "user-product"
    model: UserPopPK | None = None  # type: ignore[assignment]
    sources: UserSources  # type: ignore[assignment]


class UserPotency(s.Model):
    cytokine: str
    ic50_nM: float = Field(gt=0)
    matrix: Literal["whole-blood", "cells"] = "whole-blood"
    readout: str | None = None
    sources: UserSources


class UserParams(s.Model):
    """What ``simulate --params FILE.yaml`` reads."""

    drug: Annotated[str, Field(min_length=1, max_length=80)]
    route: Literal["oral"] = "oral"
    pk: UserPK
    potency: list[UserPotency] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_per_pathway(self) -> UserParams:
        seen = [p.cytokine for p in self.potency]
        dupes = sorted({c for c in seen if seen.count(c) > 1})
        if dupes:
            raise ValueError(f"potency: more than one IC50 for {', '.join(dupes)}")
        return self

    def pk_record(self) -> s.PK:
        """The PK record as the knowledge base's own model (user sources kept aside)."""
        data = self.pk.model_dump(by_alias=True, exclude={"model", "sources", "product"})
        model = None
        if self.pk.model is not None:
            model = s.PopPK(**self.pk.model.model_dump(exclude={"sources"}), sources=[USER_CITATION])
        return s.PK(**data, product=self.pk.product, model=model, sources=[USER_CITATION])

    def sources(self) -> list[str]:
        """Every source the file gives, in order, once."""
        texts = [*self.pk.sources, *(self.pk.model.sources if self.pk.model else []), *(x for p in self.potency for x in p.sources)]
        return list(dict.fromkeys(texts))


def read(path: Path) -> UserParams:
    """Parse and validate a parameter file; a bad one is a KnowledgeError naming file, field and problem."""
    return loader.parse_one(path, UserParams)
