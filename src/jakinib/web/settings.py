"""Server settings: environment variables (``JAKINIB_*``) or a TOML file (``JAKINIB_CONFIG``).

```toml
database_url = "sqlite:////var/lib/jakinib/feedback.db"   # or postgresql+psycopg://user@host/db
public_base_url = "https://jak.example.org"      # the URL EHRs call (JWT 'aud'); required when clients exist
default_region = "FDA"
max_body_bytes = 1000000
cds_concurrency = 4                              # CDS calls waiting on threads or FHIR servers at once; more -> 503 + Retry-After
cds_max_lag_ms = 20                              # CDS calls queued longer than this on the event loop -> 503 + Retry-After
[[clients]]
iss = "https://ehr.example.org"
jwks_url = "https://ehr.example.org/.well-known/jwks.json"   # or jwks = {keys = [...]}
jku_allow = ["https://ehr.example.org/jwks"]                 # JWT 'jku' headers that may be followed
tenant = "hospital-a"
region = "EMA"
```
With no ``clients``, the server runs in *local mode*: loopback only, unauthenticated calls accepted,
CORS only for loopback origins. The default database is ``feedback.db`` in the user's data directory
(platformdirs), never the current folder. Every value is checked at start; an error names the field.
Environment variables: ``JAKINIB_DATABASE_URL``, ``JAKINIB_PUBLIC_BASE_URL``, ``JAKINIB_DEFAULT_REGION``,
``JAKINIB_MAX_BODY_BYTES``, ``JAKINIB_FHIR_TIMEOUT_S``, ``JAKINIB_CDS_CONCURRENCY``, ``JAKINIB_CDS_MAX_LAG_MS``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jakinib.errors import InputError
from jakinib.knowledge.schema import REGULATORS


def default_database_url() -> str:
    """``sqlite:///<user data dir>/jakinib/feedback.db``; the folder is created (only this default one: a
    configured URL whose folder is missing is an error at start, not a folder made for it)."""
    import platformdirs

    return f"sqlite:///{Path(platformdirs.user_data_dir('jakinib', appauthor=False, ensure_exists=True)) / 'feedback.db'}"


def _region(value: str) -> str:
    if value not in REGULATORS:
        raise ValueError(f"{value!r} is not a regulator (one of {', '.join(REGULATORS)})")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"{value!r} is not an http(s) URL without query or fragment")
    return value


class Client(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    iss: str
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    jku_allow: list[str] = Field(default_factory=list)
    tenant: str | None = None
    region: str = "FDA"

    _check_region = field_validator("region")(_region)

    @model_validator(mode="after")
    def _has_keys(self) -> Client:
        if self.jwks is None and not self.jwks_url and not self.jku_allow:
            raise ValueError(f"client {self.iss!r} has no keys: give jwks, jwks_url or jku_allow")
        return self


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    database_url: str = Field(default_factory=default_database_url)
    public_base_url: str | None = None
    default_region: str = "FDA"
    max_body_bytes: int = Field(1_000_000, ge=1_000, le=100_000_000)
    fhir_timeout_s: float = Field(5.0, gt=0, le=60, allow_inf_nan=False)
    cds_concurrency: int = Field(4, ge=1, le=256)
    cds_max_lag_ms: float = Field(20, gt=0, le=10_000, allow_inf_nan=False)
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])  # with clients only; local mode allows loopback origins
    clients: list[Client] = Field(default_factory=list)

    _check_region = field_validator("default_region")(_region)

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return _http_url(value).rstrip("/") if value else None

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+")):
            raise ValueError("expected a sqlite:/// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _audience_is_configured(self) -> Settings:
        if self.clients and not self.public_base_url:
            raise ValueError("public_base_url is required when [[clients]] are configured (it is the JWT audience)")
        if len({c.iss for c in self.clients}) != len(self.clients):
            raise ValueError("clients: each iss may appear once")
        return self

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
           "default_region": "JAKINIB_DEFAULT_REGION", "max_body_bytes": "JAKINIB_MAX_BODY_BYTES",
           "fhir_timeout_s": "JAKINIB_FHIR_TIMEOUT_S", "cds_concurrency": "JAKINIB_CDS_CONCURRENCY",
           "cds_max_lag_ms": "JAKINIB_CDS_MAX_LAG_MS"}
    for key, var in env.items():
        if os.environ.get(var):
            data[key] = os.environ[var]
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = "".join(f"{p}: " for p in [".".join(str(p) for p in err["loc"])] if p)
        source = f"{path}: " if path else ""
        raise InputError(f"{source}settings: {where}{err['msg'].removeprefix('Value error, ')}") from None
