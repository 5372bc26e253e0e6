"""HTTP-level attack suite: every refusal has the right status and RFC 6750 challenge, is not
cacheable, never reaches the handler, and leaks the token neither in the answer nor in the logs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from s2s.keys import SigningKey
from tests.litestar.conftest import REALM, Harness, Mint, b64


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    # Everything at DEBUG is captured, so "not in caplog" covers every log line we could write.
    caplog.set_level(logging.DEBUG)


def assert_refused(
    response: httpx.Response,
    *,
    status: int,
    error: str | None,
    harness: Harness,
    caplog: pytest.LogCaptureFixture,
    secrets: Sequence[str] = (),
    scope: str | None = None,
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer realm="{REALM}"')
    if error is None:
        # RFC 6750 §3.1: no credentials, no error code.
        assert challenge == f'Bearer realm="{REALM}"'
    else:
        assert f'error="{error}"' in challenge
        assert 'error_description="' in challenge
    if scope is None:
        assert "scope=" not in challenge
    else:
        assert f'scope="{scope}"' in challenge
    assert response.headers["cache-control"] == "no-store"
    assert sum(harness.calls.values()) == 0, f"handler ran: {dict(harness.calls)}"
    body = response.json()
    assert body["status_code"] == status
    assert body.get("error") == error
    assert body["error_description"]
    everything = response.text + "\n" + str(response.headers.raw)
    # The test client logs the URL it requests (client side, not the service): leave those out.
    assert any(r.name == "httpx" for r in caplog.records), (
        "log capture is not live: the check would be vacuous"
    )
    logs = "\n".join(
        r.getMessage() for r in caplog.records if "http://testserver.local" not in r.getMessage()
    )
    for secret in secrets:
        for part in {secret, *(p for p in secret.split(".") if len(p) >= 8)}:
            assert part not in everything
            assert part not in logs
    return body


def test_valid_token_reaches_handler(client: TestClient[Litestar], harness: Harness, mint: Mint) -> None:
    response = client.get("/orders", headers={"Authorization": f"Bearer {mint()}"})
    assert response.status_code == 200
    assert response.json() == {"subject": "billing-service", "orders": [1, 2]}
    assert harness.calls["orders"] == 1


def test_scheme_is_case_insensitive(client: TestClient[Litestar], harness: Harness, mint: Mint) -> None:
    response = client.get("/orders", headers={"Authorization": f"bearer {mint()}"})
    assert response.status_code == 200


def test_no_header(client: TestClient[Litestar], harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    assert_refused(client.get("/orders"), status=401, error=None, harness=harness, caplog=caplog)


def test_basic_scheme_is_not_a_bearer_token(
    client: TestClient[Litestar], harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    secret = b64(b"billing-service:hunter2-secret")
    response = client.get("/orders", headers={"Authorization": f"Basic {secret}"})
    assert_refused(response, status=401, error=None, harness=harness, caplog=caplog, secrets=[secret])


def test_two_authorization_headers(
    client: TestClient[Litestar], harness: Harness, mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    token = mint()
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    response = client.get("/orders", headers=headers)
    assert_refused(
        response, status=400, error="invalid_request", harness=harness, caplog=caplog, secrets=[token]
    )


def test_two_credentials_in_one_header(
    client: TestClient[Litestar], harness: Harness, mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    token = mint()
    response = client.get("/orders", headers={"Authorization": f"Bearer {token}, Bearer {token}"})
    assert_refused(
        response, status=400, error="invalid_request", harness=harness, caplog=caplog, secrets=[token]
    )


def test_token_in_query_string_is_refused(
    client: TestClient[Litestar], harness: Harness, mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    token = mint()
    response = client.get("/orders", params={"access_token": token})
    assert_refused(
        response, status=400, error="invalid_request", harness=harness, caplog=caplog, secrets=[token]
    )


def test_token_in_query_string_is_refused_even_with_a_header(
    client: TestClient[Litestar], harness: Harness, mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    token = mint()
    response = client.get(
        "/orders", params={"access_token": token}, headers={"Authorization": f"Bearer {token}"}
    )
    assert_refused(
        response, status=400, error="invalid_request", harness=harness, caplog=caplog, secrets=[token]
    )


def test_oversized_header(
    client: TestClient[Litestar], harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    token = "a" * 20_000
    response = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
    assert_refused(
        response, status=400, error="invalid_request", harness=harness, caplog=caplog, secrets=[token]
    )


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt-at-all",
        "aaaaaaaaaa.bbbbbbbbbb",
        "aaaaaaaaaa.bbbbbbbbbb.cccccccccc",
        "aaaaaaaaaa.bbbbbbbbbb.cccccccccc.dddddddddd.eeeeeeeeee",
        b64({"alg": "ES256"}) + "." + b64(b"[1, 2, 3]") + ".c2lnbmF0dXJlLXNpZw",
        b64(b'"just a string header"') + "." + b64({"sub": "x"}) + ".c2lnbmF0dXJlLXNpZw",
        b64({"alg": "ES256", "kid": "k", "crit": 5}) + "." + b64({"sub": "x"}) + ".c2lnbmF0dXJlLXNpZw",
        b64(b"\xff\xfe\x00garbage") + "." + b64(b"\xff") + ".c2lnbmF0dXJlLXNpZw",
    ],
)
def test_garbage_token(
    client: TestClient[Litestar], harness: Harness, caplog: pytest.LogCaptureFixture, token: str
) -> None:
    response = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
    assert_refused(
        response, status=401, error="invalid_token", harness=harness, caplog=caplog, secrets=[token]
    )


def test_alg_none(
    client: TestClient[Litestar],
    harness: Harness,
    key: SigningKey,
    mint: Mint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    claims = mint().split(".")[1]
    token = b64({"alg": "none", "kid": key.kid, "typ": "at+jwt"}) + "." + claims + "."
    response = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
    assert_refused(
        response, status=401, error="invalid_token", harness=harness, caplog=caplog, secrets=[claims]
    )


def test_expired(
    client: TestClient[Litestar], harness: Harness, mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    token = mint(iat=1_699_990_000, exp=1_699_993_600)
    response = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
    assert_refused(
        response, status=401, error="invalid_token", harness=harness, caplog=caplog, secrets=[token]
    )


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "someone-else"},
        {"aud": ["someone-else", "another"]},
        {"iss": "https://evil.test"},
        {"iss": "https://issuer.test/"},
        {"sub": None},
    ],
)
def test_wrong_claims(
    client: TestClient[Litestar],
    harness: Harness,
    mint: Mint,
    caplog: pytest.LogCaptureFixture,
    claims: dict[str, Any],
) -> None:
    token = mint(**claims)
    response = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
    assert_refused(
        response, status=401, error="invalid_token", harness=harness, caplog=caplog, secrets=[token]
    )


def test_id_token_type_is_not_an_access_token(
    client: TestClient[Litestar], harness: Harness, mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    token = mint(header={"typ": "JWT"})
    response = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
    assert_refused(
        response, status=401, error="invalid_token", harness=harness, caplog=caplog, secrets=[token]
    )


def test_unknown_kid(
    client: TestClient[Litestar],
    harness: Harness,
    mint: Mint,
    other_key: SigningKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = mint(signing_key=other_key)
    response = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
    assert_refused(
        response, status=401, error="invalid_token", harness=harness, caplog=caplog, secrets=[token]
    )


def test_known_kid_forged_signature(
    *,
    client: TestClient[Litestar],
    harness: Harness,
    key: SigningKey,
    mint: Mint,
    other_key: SigningKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Signed by another key but naming the published kid.
    forged = mint(signing_key=other_key).split(".")
    forged[0] = b64({"alg": "ES256", "kid": key.kid, "typ": "at+jwt"})
    token = ".".join(forged)
    response = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
    assert_refused(
        response, status=401, error="invalid_token", harness=harness, caplog=caplog, secrets=[token]
    )


def test_missing_scope(
    client: TestClient[Litestar], harness: Harness, mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    token = mint(scope="orders:write")
    response = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
    body = assert_refused(
        response,
        status=403,
        error="insufficient_scope",
        harness=harness,
        caplog=caplog,
        secrets=[token],
        scope="orders:read",
    )
    assert body["scope"] == "orders:read"
    assert "orders:read" in body["error_description"]


def test_missing_role(
    client: TestClient[Litestar], harness: Harness, mint: Mint, caplog: pytest.LogCaptureFixture
) -> None:
    token = mint(roles=["reader"])
    response = client.delete("/orders/7", headers={"Authorization": f"Bearer {token}"})
    body = assert_refused(
        response, status=403, error="insufficient_scope", harness=harness, caplog=caplog, secrets=[token]
    )
    assert "admin" in body["error_description"]


def test_role_grants_access(client: TestClient[Litestar], harness: Harness, mint: Mint) -> None:
    response = client.delete("/orders/7", headers={"Authorization": f"Bearer {mint(roles=['admin'])}"})
    assert response.status_code == 204
    assert harness.calls["delete"] == 1


def test_verifier_crash_is_not_a_500(mint: Mint, caplog: pytest.LogCaptureFixture) -> None:
    from collections import Counter

    from s2s.litestar import S2SAuthPlugin
    from tests.litestar.conftest import build_app

    token = mint()

    class CrashingVerifier:
        async def verify(self, token: str) -> Any:
            raise RuntimeError(f"boom while decoding {token}")

    calls: Counter[str] = Counter()
    plugin = S2SAuthPlugin(CrashingVerifier(), realm=REALM)
    harness = Harness(build_app(plugin, calls), plugin, calls, httpx.AsyncClient())
    with TestClient(harness.app) as client:
        response = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
    assert_refused(
        response, status=401, error="invalid_token", harness=harness, caplog=caplog, secrets=[token]
    )
    assert "RuntimeError" in caplog.text


@pytest.mark.parametrize(
    "value",
    [
        b"Bearer",
        b"Bearer ",
        b"Bearer  ",
        b"Bearer\tabc.def.ghi",
        b"Bearer \xff\xfe\xfd",
        b"Bearer abc def",
        b"Bearer a.b.c=",
        b"Bearer ....",
        b"Bearer " + b"." * 4000,
        b"Bearer " + b"A" * 8000 + b".B.C",
        b"Bearer ===",
        b"Bearer \x00",
        b"Negotiate abc",
        b",,,,",
    ],
)
def test_odd_headers_never_give_a_500(
    client: TestClient[Litestar], harness: Harness, caplog: pytest.LogCaptureFixture, value: bytes
) -> None:
    response = client.get("/orders", headers=[(b"authorization", value)])
    assert response.status_code in (400, 401)
    assert response.headers["www-authenticate"].startswith(f'Bearer realm="{REALM}"')
    assert response.headers["cache-control"] == "no-store"
    assert sum(harness.calls.values()) == 0
