"""Entra ID and Microsoft Graph errors::

    S2SError
    ├── EntraError                    Entra ID refused or failed a token request
    │   ├── EntraInvalidClient        invalid_client / unauthorized_client: our credentials
    │   ├── EntraInvalidGrant         invalid_grant: e.g. the user token given for on-behalf-of
    │   ├── EntraInvalidScope         invalid_scope
    │   ├── EntraInteractionRequired  the user must step up; ``claims`` says with what
    │   └── EntraUnavailable          unreachable or a server error
    │       └── EntraThrottled        HTTP 429; ``retry_after`` when Entra said
    └── GraphError                    Microsoft Graph refused or failed a call
        ├── GraphUnauthorized         401 (expired, revoked, or a claims challenge in ``claims``)
        ├── GraphForbidden            403
        ├── GraphNotFound             404
        ├── GraphThrottled            429
        └── GraphUnavailable          5xx, unreachable, or an unreadable answer

Entra errors carry a ``Entra`` prefix: the issuer has its own ``InvalidClient`` and friends.
MSAL reports failures as dicts; :func:`error_from_result` turns them into these typed errors. The
``error`` attribute is the OAuth ``error`` code Entra sent (``invalid_client``, ``interaction_required``,
...). Descriptions come from Entra (``AADSTS...`` texts) with any token or secret we sent scrubbed out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from s2s.errors import S2SError

__all__ = [
    "EntraError",
    "EntraInteractionRequired",
    "EntraInvalidClient",
    "EntraInvalidGrant",
    "EntraInvalidScope",
    "EntraThrottled",
    "EntraUnavailable",
    "GraphError",
    "GraphForbidden",
    "GraphNotFound",
    "GraphThrottled",
    "GraphUnauthorized",
    "GraphUnavailable",
    "error_from_result",
    "scrub",
]

_MAX_DESCRIPTION = 400


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` without any of ``secrets`` in it, capped in length."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text if len(text) <= _MAX_DESCRIPTION else text[:_MAX_DESCRIPTION] + "..."


class EntraError(S2SError):
    """Entra ID refused or failed the token request."""

    error = "entra_error"

    def __init__(
        self,
        description: str = "",
        *,
        error: str | None = None,
        error_codes: tuple[int, ...] = (),
        correlation_id: str | None = None,
        claims: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(description)
        if error:
            self.error = error
        self.error_codes = error_codes
        self.correlation_id = correlation_id
        # The claims challenge (a JSON string) for the client to step up with, when Entra sent one.
        self.claims = claims
        self.retry_after = retry_after


class EntraInvalidClient(EntraError):
    """Entra ID did not accept this application's credentials (secret or certificate)."""

    error = "invalid_client"


class EntraInvalidGrant(EntraError):
    """Entra ID did not accept the grant, e.g. the incoming user token for on-behalf-of."""

    error = "invalid_grant"


class EntraInvalidScope(EntraError):
    """A requested scope is unknown or not allowed for this application."""

    error = "invalid_scope"


class EntraInteractionRequired(EntraError):
    """The user must sign in again, consent, or satisfy a policy; ``claims`` says what to ask for."""

    error = "interaction_required"


class EntraUnavailable(EntraError):
    """Entra ID could not be reached or answered with a server error."""

    error = "temporarily_unavailable"


class EntraThrottled(EntraUnavailable):
    """Entra ID answered 429; ``retry_after`` says how long to wait when it said so."""

    error = "throttled"


_BY_CODE: dict[str, type[EntraError]] = {
    "invalid_client": EntraInvalidClient,
    "unauthorized_client": EntraInvalidClient,
    "invalid_grant": EntraInvalidGrant,
    "invalid_scope": EntraInvalidScope,
    "interaction_required": EntraInteractionRequired,
    "consent_required": EntraInteractionRequired,
    "login_required": EntraInteractionRequired,
    "temporarily_unavailable": EntraUnavailable,
    "server_error": EntraUnavailable,
}


def error_from_result(
    result: Mapping[str, Any],
    *,
    secrets: Iterable[str] = (),
    status: int | None = None,
    retry_after: float | None = None,
) -> EntraError:
    """The typed error for an MSAL error dict. ``secrets`` are scrubbed from the description."""
    code = str(result.get("error") or "entra_error")
    claims = result.get("claims")
    claims = claims if isinstance(claims, str) and claims else None
    cls: type[EntraError]
    if status == 429:
        cls = EntraThrottled
    elif claims is not None:
        # Entra sends a claims challenge with invalid_grant too (Conditional Access on OBO):
        # whatever the code, the caller must step up, so it is an EntraInteractionRequired.
        cls = EntraInteractionRequired
    else:
        cls = _BY_CODE.get(code, EntraError)
    raw_description = result.get("error_description")
    description = scrub(str(raw_description), secrets) if raw_description else f"Entra ID answered {code}"
    codes = result.get("error_codes")
    correlation = result.get("correlation_id")
    return cls(
        description,
        error=code if cls is not EntraThrottled else None,
        error_codes=tuple(c for c in codes if isinstance(c, int)) if isinstance(codes, list) else (),
        correlation_id=correlation if isinstance(correlation, str) else None,
        claims=claims,
        retry_after=retry_after,
    )


class GraphError(S2SError):
    """Microsoft Graph refused or failed the call."""

    error = "graph_error"

    def __init__(
        self,
        description: str = "",
        *,
        status_code: int | None = None,
        code: str | None = None,
        claims: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(description)
        self.status_code = status_code
        # Graph's own code, e.g. "Authorization_RequestDenied" or "InvalidAuthenticationToken".
        self.code = code
        # A claims challenge from Graph's WWW-Authenticate (Continuous Access Evaluation), decoded JSON.
        self.claims = claims
        self.retry_after = retry_after


class GraphUnauthorized(GraphError):
    """Graph did not accept the token (expired, revoked, or a claims challenge)."""

    error = "graph_unauthorized"


class GraphForbidden(GraphError):
    """The token is valid but lacks the permission Graph needs."""

    error = "graph_forbidden"


class GraphNotFound(GraphError):
    """Graph has no such resource."""

    error = "graph_not_found"


class GraphThrottled(GraphError):
    """Graph answered 429; ``retry_after`` says how long to wait."""

    error = "graph_throttled"


class GraphUnavailable(GraphError):
    """Graph could not be reached or answered with a server error or something unreadable."""

    error = "graph_unavailable"
