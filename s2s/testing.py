"""Tokens for tests, without a running issuer.

:class:`TestIssuer` holds an in-memory signing key and serves its JWKS through an
``httpx.MockTransport``: give the plugin (or a :class:`~s2s.verify.TokenVerifier`) the issuer's
:meth:`~TestIssuer.verifier_config` and :meth:`~TestIssuer.http_client`, and every token from
:meth:`~TestIssuer.mint` verifies exactly as one from ``s2s serve`` would (RFC 9068 claims,
``typ: at+jwt``, ES256 by default), through the same verifier code, with no network and no port::

    from s2s.litestar import S2SAuthPlugin
    from s2s.testing import TestIssuer

    issuer = TestIssuer()
    plugin = S2SAuthPlugin(issuer.verifier_config(audience="orders-api"), http_client=issuer.http_client())
    token = issuer.mint(scopes=["orders:read"])

Built only on the public :mod:`s2s.jose`, :mod:`s2s.keys` and :mod:`s2s.verify` APIs. Never use it
outside tests: anyone holding a ``TestIssuer`` can mint any token its verifiers accept.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError
from s2s.jose import b64url_encode, private_key_from_jwk, serialize_compact, sign_function
from s2s.keys import KeySet, KeyState, generate_key
from s2s.oauth import TOKEN_PATH
from s2s.verify import VerifierConfig

__all__ = ["TestIssuer"]

_HEADER = {"typ": "at+jwt"}


class TestIssuer:
    """An issuer that lives in memory: one current signing key, its JWKS, and :meth:`mint`.

    ``issuer`` is the ``iss`` of its tokens; nothing listens there: :meth:`http_client` answers
    the JWKS and metadata requests in-process. ``clock`` dates the tokens (a ``FakeClock`` shared
    with the verifier tests expiry without sleeping).
    """

    __test__ = False  # a helper for tests, not a test class for pytest to collect

    def __init__(
        self,
        issuer: str = "https://issuer.test",
        *,
        alg: str = "ES256",
        clock: Clock = system_clock,
        ttl: float = 300,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.jwks_uri = f"{self.issuer}/.well-known/jwks.json"
        self.ttl = ttl
        self._clock = clock
        self.key = generate_key(alg, now=clock.now(), state=KeyState.CURRENT)
        assert self.key.private_jwk is not None  # generate_key always makes a local key pair
        self._sign = sign_function(private_key_from_jwk(dict(self.key.private_jwk)), alg)
        self._audience: str | None = None
        self.requests = 0  # JWKS and metadata requests answered, for tests of caching

    @property
    def jwks(self) -> dict[str, Any]:
        """The public JWKS (never a private member)."""
        return KeySet((self.key,)).jwks()

    def verifier_config(self, audience: str, **options: Any) -> VerifierConfig:
        """The verifier settings that trust this issuer for ``audience`` (the default audience of
        :meth:`mint` from now on); ``options`` as for :meth:`VerifierConfig.for_s2s`."""
        self._audience = audience
        return VerifierConfig.for_s2s(self.issuer, audience, **options)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        url = str(request.url)
        if request.method == "GET" and url == self.jwks_uri:
            return httpx.Response(200, json=self.jwks, headers={"Cache-Control": "max-age=300"})
        if request.method == "GET" and url in (
            f"{self.issuer}/.well-known/oauth-authorization-server",
            f"{self.issuer}/.well-known/openid-configuration",
        ):
            metadata = {
                "issuer": self.issuer,
                "jwks_uri": self.jwks_uri,
                "token_endpoint": f"{self.issuer}{TOKEN_PATH}",
            }
            return httpx.Response(200, json=metadata)
        return httpx.Response(404, json={"error": "not_found"})

    def http_client(self) -> httpx.AsyncClient:
        """An async client that answers this issuer's JWKS and metadata in-process."""
        return httpx.AsyncClient(transport=httpx.MockTransport(self._answer))

    def sync_http_client(self) -> httpx.Client:
        """The same for :class:`~s2s.verify.SyncTokenVerifier`."""
        return httpx.Client(transport=httpx.MockTransport(self._answer))

    def claims(
        self,
        *,
        subject: str = "test-client",
        audience: str | None = None,
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
        permissions: Iterable[str] = (),
        ttl: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """The RFC 9068 claims :meth:`mint` signs (what ``s2s serve`` puts in a token)."""
        aud = audience if audience is not None else self._audience
        if aud is None:
            raise ConfigError("TestIssuer.mint needs an audience: pass audience= or call verifier_config")
        iat = int(self._clock.now())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": aud,
            "client_id": subject,
            "iat": iat,
            "exp": iat + max(1, int(self.ttl if ttl is None else ttl)),
            "jti": b64url_encode(os.urandom(16)),
        }
        if scope := " ".join(scopes):
            claims["scope"] = scope
        for name, values in (("roles", list(roles)), ("permissions", list(permissions))):
            if values:
                claims[name] = values
        claims.update(extra)
        return claims

    def mint(self, *, header: Mapping[str, Any] | None = None, **claims: Any) -> str:
        """A signed access token with the :meth:`claims` for these keywords (``subject``,
        ``audience``, ``scopes``, ``roles``, ``permissions``, ``ttl``; any other keyword is a claim
        added or replacing a default: ``exp=...`` to test expiry, ``iss=...`` for a stranger);
        ``header`` adds header parameters."""
        protected = {**_HEADER, **(header or {}), "alg": self.key.alg, "kid": self.key.kid}
        return serialize_compact(protected, self.claims(**claims), self._sign)

    def bearer(self, **mint: Any) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}`` for a test client request."""
        return {"Authorization": f"Bearer {self.mint(**mint)}"}
