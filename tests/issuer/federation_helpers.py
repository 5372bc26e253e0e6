"""External issuers for the federation tests: real keys, real signed tokens, a real HTTP server.

:class:`ExternalIssuer` plays one platform on 127.0.0.1: a Kubernetes cluster's service-account
issuer (OIDC discovery + ``/openid/v1/jwks``), GitHub Actions' token service (discovery +
``/.well-known/jwks``, tokens with an ``x5t`` header), or a SPIFFE bundle endpoint (a JWKS whose
keys carry ``use: "jwt-svid"`` and a ``spiffe_refresh_hint``). Tokens are signed with
:mod:`s2s.jose` (``cryptography``) in the shapes those platforms use.
"""

from __future__ import annotations

import json
import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from s2s.jose import (
    b64url_encode,
    generate_private_key,
    public_key_to_jwk,
    serialize_compact,
    sign_function,
    thumbprint,
)

__all__ = ["ExternalIssuer", "external_issuer", "unsigned_token"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        owner = self.server.owner
        owner.requests.append((self.path, self.headers.get("Authorization")))
        doc = owner.documents.get(self.path.split("?")[0])
        if doc is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: ExternalIssuer


class ExternalIssuer:
    """One platform's token issuer. ``kind``: kubernetes, github or spiffe."""

    def __init__(
        self,
        kind: str,
        *,
        trust_domain: str = "example.org",
        alg: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.kind = kind
        self.alg = alg or ("ES256" if kind == "spiffe" else "RS256")
        self.key = generate_private_key(self.alg)
        public = public_key_to_jwk(self.key.public_key())
        self.kid = thumbprint(public)
        self.public_jwk: dict[str, Any] = {**public, "kid": self.kid, "alg": self.alg}
        self.trust_domain = trust_domain
        self.requests: list[tuple[str, str | None]] = []
        self.documents: dict[str, Any] = {}
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.publish()

    # -- what the server serves ------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        """The token's ``iss`` (SPIFFE: the trust domain, which is what is trusted)."""
        return f"spiffe://{self.trust_domain}" if self.kind == "spiffe" else self.url

    @property
    def jwks_path(self) -> str:
        return {"kubernetes": "/openid/v1/jwks", "github": "/.well-known/jwks", "spiffe": "/bundle"}[
            self.kind
        ]

    @property
    def jwks_url(self) -> str:
        return self.url + self.jwks_path

    def jwks(self) -> dict[str, Any]:
        if self.kind == "spiffe":
            # An X.509 authority sits next to the JWT authority in a real bundle: never a JWT key.
            x509 = public_key_to_jwk(generate_private_key("ES256").public_key())
            return {
                "keys": [
                    {**self.public_jwk, "use": "jwt-svid"},
                    {**x509, "use": "x509-svid", "x5c": []},
                ],
                "spiffe_refresh_hint": 300,
                "spiffe_sequence": 1,
            }
        return {"keys": [{**self.public_jwk, "use": "sig"}]}

    def publish(self) -> None:
        self.documents[self.jwks_path] = self.jwks()
        if self.kind != "spiffe":
            self.documents["/.well-known/openid-configuration"] = {
                "issuer": self.url,
                "jwks_uri": self.jwks_url,
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [self.alg],
            }

    def start(self) -> ExternalIssuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def write_jwks(self, path: Any) -> None:
        path.write_text(json.dumps(self.jwks()), "utf-8")

    # -- tokens ------------------------------------------------------------------------------------
    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None, key: Any = None) -> str:
        head: dict[str, Any] = {"alg": self.alg, "kid": self.kid}
        if self.kind == "github":
            head = {"typ": "JWT", **head, "x5t": "8YlfahLpvtwmzDP5pH5YV8pl0lI"}
        elif self.kind == "spiffe":
            head["typ"] = "JWT"
        head.update(header or {})
        return serialize_compact(head, claims, sign_function(key or self.key, self.alg))

    def claims(
        self, subject: str, audience: str, now: float, lifetime: int = 3600, **extra: Any
    ) -> dict[str, Any]:
        """The claims this platform puts in a token for ``subject``."""
        iat = int(now)
        claims: dict[str, Any]
        if self.kind == "kubernetes":
            _, _, namespace, account = subject.split(":")
            claims = {
                "aud": [audience],
                "exp": iat + lifetime,
                "iat": iat,
                "iss": self.issuer,
                "jti": str(uuid.uuid4()),
                "kubernetes.io": {
                    "namespace": namespace,
                    "node": {"name": "node-1", "uid": str(uuid.uuid4())},
                    "pod": {"name": f"{account}-7d9f8", "uid": str(uuid.uuid4())},
                    "serviceaccount": {"name": account, "uid": str(uuid.uuid4())},
                },
                "nbf": iat,
                "sub": subject,
            }
        elif self.kind == "github":
            repo, _, rest = subject.removeprefix("repo:").partition(":")
            owner = repo.split("/")[0]
            ref = rest.removeprefix("ref:") if rest.startswith("ref:") else "refs/heads/main"
            claims = {
                "jti": str(uuid.uuid4()),
                "sub": subject,
                "aud": audience,
                "ref": ref,
                "sha": "d3b07384d113edec49eaa6238ad5ff00",
                "repository": repo,
                "repository_owner": owner,
                "repository_id": "123456",
                "run_id": "42",
                "actor": "octocat",
                "workflow": "deploy",
                "event_name": "push",
                "ref_type": "branch",
                "job_workflow_ref": f"{repo}/.github/workflows/deploy.yml@{ref}",
                "iss": self.issuer,
                "nbf": iat - 5,
                "exp": iat + min(lifetime, 3600),
                "iat": iat,
            }
            if rest.startswith("environment:"):
                claims["environment"] = rest.removeprefix("environment:")
        else:
            claims = {"sub": subject, "aud": [audience], "exp": iat + min(lifetime, 300), "iat": iat}
        claims.update(extra)
        return claims

    def token(self, subject: str, audience: str, now: float, **extra: Any) -> str:
        return self.sign(self.claims(subject, audience, now, **extra))


@contextmanager
def external_issuer(kind: str, **options: Any) -> Iterator[ExternalIssuer]:
    issuer = ExternalIssuer(kind, **options).start()
    try:
        yield issuer
    finally:
        issuer.stop()


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A token whose signature part the test chooses (alg none, a MAC...)."""
    h = b64url_encode(json.dumps(header).encode())
    p = b64url_encode(json.dumps(claims).encode())
    return f"{h}.{p}.{b64url_encode(signature)}"
