"""Throw many malformed requests at the token endpoint: never a 500, always RFC 6749 JSON."""

from __future__ import annotations

import base64
import random
from urllib.parse import quote

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.issuer.helpers import FORM, SECRET, assert_no_leak

NAMES = [
    "grant_type", "client_id", "client_secret", "scope", "audience", "resource",
    "client_assertion", "client_assertion_type", "x", "", "grant_type[]", "%00",
]  # fmt: skip
VALUES = [
    "client_credentials", "svc", SECRET, "orders:read", "https://orders.internal", "", " ", "%", "%zz",
    "%ff", "\x00", "é", "a" * 3000, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    "eyJhbGciOiJub25lIn0.e30.", "e30.e30.e30", "W10.W10.W10", "a.b.c", "\ud800",
]  # fmt: skip
CONTENT_TYPES = [
    FORM, f"{FORM}; charset=utf-8", f"{FORM}; charset=latin-1", "application/json", "multipart/form-data",
    "", "text/plain", f"{FORM.upper()}", "application/x-www-form-urlencoded;;;", "\x7f",
]  # fmt: skip


def _value(rng: random.Random) -> str:
    value = rng.choice(VALUES)
    return quote(value, safe="", errors="surrogatepass") if rng.random() < 0.8 else value


def _body(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.1:
        return rng.randbytes(rng.randint(0, 200))
    if kind < 0.15:
        return b'{"grant_type": "client_credentials", "client_id": "svc"}'
    parts = []
    for _ in range(rng.randint(0, 8)):
        name = rng.choice(NAMES)
        sep = rng.choice(["=", "=", "=", "", "=="])
        parts.append(f"{quote(name)}{sep}{_value(rng)}")
    joined = rng.choice(["&", "&", ";", "&&"]).join(parts)
    return joined.encode("utf-8", "surrogatepass")


def _authorization(rng: random.Random) -> str | None:
    choice = rng.random()
    if choice < 0.4:
        return None
    raw = rng.choice([f"svc:{SECRET}", "svc", ":", f"%zz:{SECRET}", "svc:%ff", "é:é", "", "a:b:c"])
    encoded = base64.b64encode(raw.encode()).decode()
    return rng.choice([f"Basic {encoded}", f"basic {encoded}", f"Basic {encoded}==", "Basic", "Bearer x",
                       f"Basic  {encoded}", f"Basic {encoded[:-1]}", "Digest a=b"])  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_no_input_shape_gives_a_500(
    client: TestClient[Litestar], caplog: pytest.LogCaptureFixture, seed: int
) -> None:
    rng = random.Random(seed)
    for _ in range(150):
        headers = {"content-type": rng.choice(CONTENT_TYPES)}
        auth = _authorization(rng)
        if auth is not None:
            headers["authorization"] = auth
        method = "POST" if rng.random() < 0.95 else rng.choice(["GET", "PUT", "DELETE", "PATCH"])
        response = client.request(method, "/oauth2/token", content=_body(rng), headers=headers)
        assert response.status_code < 500, (response.status_code, response.text)
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        if response.status_code == 200:
            assert body["token_type"] == "Bearer"
        else:
            assert isinstance(body["error"], str) and set(body) <= {"error", "error_description"}
        assert_no_leak(response, caplog, SECRET)
