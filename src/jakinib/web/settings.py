"""Server settings: environment variables (``JAKINIB_*``) or a TOML file (``JAKINIB_CONFIG``).

```toml
database_url = "sqlite:///jakinib.db"          # or postgresql+psycopg://user@host/db
public_base_url = "https://jak.example.org"      # the URL EHRs call (JWT 'aud' is checked against it)
default_region = "FDA"
max_body_bytes = 1000000
[[clients]]
iss = "https://ehr.example.org"
jwks_url = "https://ehr.example.org/.well-known/jwks.json"   # or jwks = {keys = [...]}
jku_allow = ["https://ehr.example.org/jwks"]                 # JWT 'jku' headers that may be followed
tenant = "hospital-a"
region = "EMA"
```
With no ``clients``, the server runs in *local mode*: loopback only, unauthenticated calls accepted.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jakinib.errors import InputError


class Client(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    iss: str
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    jku_allow: list[str] = Field(default_factory=list)
    tenant: str | None = None
    region: str = "FDA"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    database_url: str = "sqlite:///jakinib-feedback.db"
    public_base_url: str | None = None
    default_region: str = "FDA"
    max_body_bytes: int = 1_000_000
    fhir_timeout_s: float = 5.0
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    clients: list[Client] = Field(default_factory=list)

    @property
    def local_mode(self) -> bool:
        return not self.clients

    def client(self, iss: str) -> Client | None:
        return next((c for c in self.clients if c.iss == iss), None)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from a TOML file (``path`` or ``$JAKINIB_CONFIG``), then ``JAKINIB_*`` variables, then overrides."""
    data: dict[str, Any] = {}
    path = path or os.environ.get("JAKINIB_CONFIG")
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"{path}: cannot read settings: {exc}") from None
    env = {"database_url": "JAKINIB_DATABASE_URL", "public_base_url": "JAKINIB_PUBLIC_BASE_URL",
           "default_region": "JAKINIB_DEFAULT_REGION"}
    for key, var in env.items():
        if os.environ.get(var):
            data[key] = os.environ[var]
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(data)
    except Exception as exc:
        raise InputError(f"settings: {str(exc).splitlines()[0]}") from None
