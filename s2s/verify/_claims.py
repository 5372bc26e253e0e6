"""Claim checks, run after the signature verified.

Numbers are JSON numbers only (``bool`` is not a number, ``"123"`` is not a time). ``exp`` is
always required, whatever ``required_claims`` says: a token without an end is never accepted.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Mapping
from typing import Any

from s2s.verify._config import VerifierConfig
from s2s.verify.errors import (
    ExpiredToken,
    InvalidAudience,
    InvalidClaim,
    MissingClaim,
    TokenNotYetValid,
    TokenTooOld,
    UntrustedIssuer,
    WrongTokenType,
)

__all__ = ["ClaimsPolicy"]

_NUMBER = (int, float)
# Plain ints in 0 .. 2**53 - 1 skip the float conversion (the fast path for every real token):
# for an int, ``value >> _TIME_BITS`` is 0 exactly there (negative ints shift to -1).
_TIME_BITS = 53


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        if name in claims:
            raise InvalidClaim(f"invalid {name} claim")
        return None
    return _time(value, name)


def _time(value: Any, name: str) -> float:
    """A present, non-null claim as a finite number, or InvalidClaim."""
    try:
        number = float(value) if type(value) in _NUMBER else math.nan
    except OverflowError:  # an int too large for a float
        number = math.nan
    if not math.isfinite(number):
        raise InvalidClaim(f"invalid {name} claim")
    return number


class ClaimsPolicy:
    """The claim rules of one issuer, for access tokens (default) or ID tokens."""

    __slots__ = (
        "any_of",
        "assertions",
        "audience_claim",
        "audiences",
        "extra",
        "forbidden",
        "id_token",
        "leeway",
        "max_age",
        "max_lifetime",
        "required",
        "required_names",
        "single_audience",
        "tenants",
        "timed",
    )

    def __init__(
        self,
        config: VerifierConfig,
        *,
        id_token: bool = False,
        audiences: tuple[str, ...] | None = None,
        single_audience: bool = False,
    ) -> None:
        # single_audience: ``aud`` must name one audience (a string or a one-element list). Not
        # for access tokens (RFC 7519 allows several); federation uses it for external tokens,
        # which a second audience could replay here.
        self.single_audience = single_audience
        self.id_token = id_token
        self.leeway = float(config.leeway)
        self.max_age = config.max_token_age
        self.max_lifetime = config.max_lifetime
        self.tenants = frozenset(config.allowed_tenants) if config.allowed_tenants else None
        self.audiences = frozenset(audiences or config.audiences)
        if id_token:
            self.required: tuple[str, ...] = ("iss", "sub", "aud", "exp", "iat")
            self.audience_claim = "aud"
            self.forbidden: tuple[str, ...] = ()
            self.any_of: tuple[str, ...] = ()
            self.assertions: tuple[tuple[str, Any], ...] = ()
        else:
            self.required = tuple(dict.fromkeys((*config.required_claims, "exp")))
            self.audience_claim = config.audience_claim
            self.forbidden = config.forbidden_claims
            self.any_of = config.any_of_claims
            self.assertions = tuple(config.claim_assertions.items())
        self.required_names = frozenset(self.required)
        # Whether any of the optional rules applies (one test per token when none does).
        self.timed = self.max_age is not None or self.max_lifetime is not None
        self.extra = bool(self.tenants is not None or self.forbidden or self.any_of or self.assertions)

    def check(self, claims: Mapping[str, Any], now: float, tenant: str | None = None) -> float:
        """Until when the token may be served from cache, or an :class:`~s2s.verify.InvalidToken`."""
        # Runs once per verified token: the usual shapes (integer times, a string audience, no
        # optional rule configured) take the fewest steps; the order of the checks, hence which
        # refusal a token with several faults gets, is the same on every path.
        if not claims.keys() >= self.required_names:
            raise MissingClaim()
        get = claims.get
        leeway = self.leeway
        exp = get("exp")
        # Inline fast path for the common shapes; anything else goes through _number.
        if type(exp) is not int or exp >> _TIME_BITS:
            exp = _number(claims, "exp")
            if exp is None:
                raise MissingClaim()
        if now >= exp + leeway:
            raise ExpiredToken()
        latest = now + leeway
        nbf = get("nbf")
        if nbf is not None:
            if type(nbf) is not int or nbf >> _TIME_BITS:
                nbf = _time(nbf, "nbf")
            if nbf > latest:
                raise TokenNotYetValid()
        iat = get("iat")
        if iat is not None:
            if type(iat) is not int or iat >> _TIME_BITS:
                iat = _time(iat, "iat")
            if iat > latest:
                raise TokenNotYetValid("token issued in the future")
        valid_until = exp
        if self.timed:
            if self.max_age is not None:
                if iat is None:
                    raise MissingClaim()
                if now - iat > self.max_age + leeway:
                    raise TokenTooOld()
                valid_until = min(exp, iat + self.max_age + leeway)
            if self.max_lifetime is not None:
                start = iat if iat is not None else nbf
                if start is None:
                    raise MissingClaim()
                if exp - start > self.max_lifetime:
                    raise InvalidClaim("token lifetime too long")
        sub = get("sub")
        if sub is not None and not isinstance(sub, str):
            raise InvalidClaim("invalid sub claim")
        aud = get(self.audience_claim)
        if isinstance(aud, str):
            if aud not in self.audiences:
                raise InvalidAudience()
        elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
            if self.audiences.isdisjoint(aud):
                raise InvalidAudience()
            if self.single_audience and len(aud) != 1:
                raise InvalidAudience("several audiences")
        else:
            raise InvalidAudience()
        if self.extra:
            self._check_extra(claims, tenant)
        return valid_until

    def _check_extra(self, claims: Mapping[str, Any], tenant: str | None) -> None:
        """The rules most issuers do not configure: tenants, forbidden, any-of, assertions."""
        if self.tenants is not None:
            tid = claims.get("tid")
            if not isinstance(tid, str) or tid not in self.tenants or (tenant is not None and tid != tenant):
                raise UntrustedIssuer("tenant not allowed")
        for name in self.forbidden:
            if name in claims:
                raise WrongTokenType()
        if self.any_of and not any(name in claims for name in self.any_of):
            raise WrongTokenType()
        for name, expected in self.assertions:
            value = claims.get(name)
            if callable(expected):
                ok = expected(value) is True
            else:
                ok = type(value) is type(expected) and value == expected
            if not ok:
                raise InvalidClaim("claim assertion failed")

    def check_id_token(self, claims: Mapping[str, Any], nonce: str | None) -> None:
        """OpenID Connect Core §3.1.3.7 additions: ``azp`` with several audiences, and the nonce."""
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1:
            azp = claims.get("azp")
            if not isinstance(azp, str) or azp not in self.audiences:
                raise InvalidAudience()
        if nonce is not None:
            got = claims.get("nonce")
            if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
                raise InvalidClaim("nonce mismatch")
