"""CDS Hooks 2.0 request bodies, validated at the boundary (a call request and a feedback request).

Only the shape jakinib relies on is checked, and every check fails as an ``InputError`` that names the
field (``context.selections: Input should be a valid list``), so a malformed body is a 400, never a 500.
FHIR resources inside ``context`` and ``prefetch`` stay plain JSON objects here: they are read
leniently by ``jakinib.interop`` (real EHR payloads are often slightly off-spec).

>>> req = parse_call({"hook": "order-sign", "hookInstance": "1", "context": {"patientId": "pt-1"}})
>>> req.context.patient_id, req.prefetch
('pt-1', None)
>>> parse_call({"hook": "order-sign", "hookInstance": "1", "context": {"selections": 5}})
Traceback (most recent call last):
...
jakinib.errors.InputError: context.selections: Input should be a valid list
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError

from jakinib.errors import InputError

MAX_ITEMS = 1000
"""Most list items accepted in one request list (selections, feedback, accepted suggestions)."""



def _one_line(value: str) -> str:
    if any(ch < " " or ch == "\x7f" for ch in value):
        raise ValueError("must be one line of text (no CR, LF or other control characters)")
    return value


def _token(value: str) -> str:
    if not all("!" <= ch <= "~" for ch in value):
        raise ValueError("must be printable ASCII without spaces")
    return value


def _timestamp(value: str) -> str:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-11-25T10:00:00Z") from None
    if not 1900 <= when.year <= 2999:
        raise ValueError("year out of range")
    return when.isoformat()


# One line of printable text: no CR, LF or other control characters (they would split headers and logs).
Line = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_one_line)]
Token = Annotated[str, Field(min_length=1, max_length=8192), AfterValidator(_token)]
Timestamp = Annotated[str, Field(min_length=4, max_length=40), AfterValidator(_timestamp)]


class _Lenient(BaseModel):
    """Unknown members are allowed (the spec lets hooks and EHRs add context fields)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class Context(_Lenient):
    user_id: Line | None = Field(None, alias="userId")
    patient_id: Line | None = Field(None, alias="patientId")
    encounter_id: Line | None = Field(None, alias="encounterId")
    selections: Annotated[list[Line], Field(max_length=MAX_ITEMS)] | None = None
    draft_orders: dict[str, Any] | None = Field(None, alias="draftOrders")
    medications: dict[str, Any] | list[dict[str, Any]] | None = None  # medication-prescribe (CDS Hooks 1.0)


class FhirAuthorization(_Lenient):
    """OAuth 2.0 bearer token for ``fhirServer`` (CDS Hooks 2.0, "FHIR Resource Access")."""

    access_token: Token
    token_type: Literal["Bearer", "bearer"]
    expires_in: Annotated[int, Field(ge=0)]
    scope: Annotated[str, Field(max_length=4096)]
    subject: Annotated[str, Field(max_length=1024)]


class CallRequest(_Lenient):
    hook: Annotated[str, Field(min_length=1, max_length=100)]
    hook_instance: Line = Field(alias="hookInstance")
    fhir_server: AnyHttpUrl | None = Field(None, alias="fhirServer")
    fhir_authorization: FhirAuthorization | None = Field(None, alias="fhirAuthorization")
    context: Context
    prefetch: dict[str, dict[str, Any] | None] | None = None


class Coding(_Lenient):
    system: Annotated[str, Field(max_length=300)] | None = None
    code: Annotated[str, Field(max_length=100)] | None = None
    display: Annotated[str, Field(max_length=300)] | None = None


class OverrideReason(_Lenient):
    reason: Coding | None = None
    user_comment: Annotated[str, Field(max_length=2000)] | None = Field(None, alias="userComment")


class AcceptedSuggestion(_Lenient):
    id: Annotated[str, Field(min_length=1, max_length=64)]


class FeedbackItem(_Lenient):
    card: Annotated[str, Field(min_length=1, max_length=64)]
    outcome: Literal["accepted", "overridden"]
    accepted_suggestions: Annotated[list[AcceptedSuggestion], Field(max_length=MAX_ITEMS)] | None = Field(
        None, alias="acceptedSuggestions")
    override_reason: OverrideReason | None = Field(None, alias="overrideReason")
    outcome_timestamp: Timestamp | None = Field(None, alias="outcomeTimestamp")  # the spec requires it; older EHRs omit it

    def record(self) -> dict[str, Any]:
        """The plain dict the feedback store takes (its spec names; the timestamp as ISO 8601)."""
        out: dict[str, Any] = {"card": self.card, "outcome": self.outcome, "outcomeTimestamp": self.outcome_timestamp}
        if self.accepted_suggestions:
            out["acceptedSuggestions"] = [{"id": s.id} for s in self.accepted_suggestions]
        if self.override_reason:
            out["overrideReason"] = self.override_reason.model_dump(by_alias=True, exclude_none=True,
                                                                    include={"reason", "user_comment"})
        return out


class FeedbackRequest(_Lenient):
    feedback: Annotated[list[FeedbackItem], Field(min_length=1, max_length=MAX_ITEMS)]


def _validate(model: type[BaseModel], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise InputError(f"{where}: {err['msg']}") from None


def parse_call(body: Any) -> CallRequest:
    """A CDS Hooks call request, or an ``InputError`` naming the first bad field."""
    if not isinstance(body, dict):
        raise InputError("body: expected a JSON object")
    return _validate(CallRequest, body)


def parse_feedback(body: Any) -> FeedbackRequest:
    """A CDS Hooks feedback request, or an ``InputError`` naming the first bad field."""
    if not isinstance(body, dict):
        raise InputError("body: expected a JSON object")
    return _validate(FeedbackRequest, body)
