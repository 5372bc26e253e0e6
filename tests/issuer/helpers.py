"""Assertions shared by the issuer tests."""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from s2s.issuer import hash_secret
from s2s.issuer._secret_hash import hash_secret_scrypt

ISSUER = "https://issuer.test"
TOKEN_URL = f"{ISSUER}/oauth2/token"
AUDIENCE = "https://orders.internal"
OTHER_AUDIENCE = "https://billing.internal"
FORM = "application/x-www-form-urlencoded"

SECRET = "s3cr3t-Test-Value-0123456789abcdefghijklmnop"
SECRET_HASH = hash_secret(SECRET)
# The scrypt hash of earlier versions, once for the whole session: each costs tens of milliseconds.
LEGACY_HASH = hash_secret_scrypt(SECRET)


@dataclass
class PkjClient:
    """A private_key_jwt client: its private key stays in the test."""

    client_id: str
    private_key: ec.EllipticCurvePrivateKey
    kid: str
    public_jwk: dict[str, Any] = field(default_factory=dict)


def make_pkj(client_id: str = "pkj") -> PkjClient:
    key = ECKey.generate_key("P-256", private=True)
    public = dict(key.as_dict(private=False))
    public.pop("kid", None)
    kid = key.thumbprint()
    return PkjClient(client_id, key.private_key, kid, {**public, "kid": kid})  # type: ignore[arg-type]


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def assert_refused(
    response: httpx.Response,
    status: int,
    error: str,
    caplog: pytest.LogCaptureFixture,
    *secrets: str,
) -> dict[str, Any]:
    """An RFC 6749 §5.2 error response that leaks none of ``secrets``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert isinstance(body.get("error_description"), str)
    assert set(body) <= {"error", "error_description"}
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert response.headers["content-type"].startswith("application/json")
    if status == 401:
        assert response.headers["www-authenticate"].startswith('Basic realm="')
    assert_no_leak(response, caplog, *secrets)
    return dict(body)


def refusal_reason(caplog: pytest.LogCaptureFixture) -> str:
    """The precise reason of the last client-authentication failure: the answer is the same
    ``invalid_client`` for every reason (no enumeration), the reason is in the server's log."""
    lines = [r.getMessage() for r in caplog.records if "client authentication failed:" in r.getMessage()]
    assert lines, "no client authentication failure was logged"
    return lines[-1]


def assert_no_leak(response: httpx.Response, caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    # The test's own HTTP client logs the URLs it requests; everything else is the server's.
    logged = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records if not r.name.startswith("httpx")
    )
    for secret in secrets:
        if not secret:
            continue
        assert secret not in response.text
        assert secret not in headers
        assert secret not in logged


def make_assertion(
    pkj: PkjClient,
    *,
    now: float,
    header: dict[str, Any] | None = None,
    key: Any = None,
    algorithm: str = "ES256",
    drop: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    body: dict[str, Any] = {
        "iss": pkj.client_id,
        "sub": pkj.client_id,
        "aud": TOKEN_URL,
        "iat": int(now),
        "exp": int(now) + 60,
        "jti": uuid.uuid4().hex,
    }
    body.update(claims)
    for name in drop:
        body.pop(name, None)
    return jwt.encode(
        body,
        key if key is not None else pkj.private_key,
        algorithm=algorithm,
        headers={k: v for k, v in {"kid": pkj.kid, **(header or {})}.items() if v is not None},
    )


def wall() -> float:
    return time.time()
