"""private_key_jwt as MSAL and Authlib send it: no kid, a certificate named by thumbprint, an
optional x5c that is only compared, the assertion lifetimes they mint; and `s2s clients add --cert`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey
from litestar import Litestar
from litestar.testing import TestClient

from s2s.cli import main
from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.issuer import Client, InMemoryClientRegistry, IssuerSettings
from s2s.issuer._assertion import JWT_BEARER_ASSERTION_TYPE
from s2s.issuer._certs import certificates_from_pem, jwk_for_certificate
from s2s.litestar.issuer import create_issuer_app
from tests.issuer.cert_helpers import ClientCert, assertion, make_client_cert
from tests.issuer.helpers import AUDIENCE, FORM, ISSUER, TOKEN_URL, assert_refused, make_pkj, refusal_reason
from tests.support import MemoryKeyStore

TC = TestClient[Litestar]

CERT = make_client_cert("msal-app")
OTHER = make_client_cert("another-app")
FUTURE = make_client_cert("future-app", not_before=time.time() + 3600, not_after=time.time() + 7200)


def rsa_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    return RSAKey.import_key(key.public_key()).as_dict(private=False)  # type: ignore[arg-type]


def cert_jwk(cert: ClientCert) -> dict[str, Any]:
    return jwk_for_certificate(certificates_from_pem(cert.pem)[0])


AUTHLIB_KEYS = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(6)]


@pytest.fixture(autouse=True)
def _reasons_logged(caplog: pytest.LogCaptureFixture) -> None:
    # Every client-authentication failure answers the same invalid_client; the reason is logged.
    caplog.set_level(logging.INFO, "s2s")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())


@pytest.fixture
def client(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> Iterator[TC]:
    registry = InMemoryClientRegistry(
        [
            Client(client_id="msal-app", audiences=(AUDIENCE,), jwks=(cert_jwk(CERT),)),
            Client(client_id="future-app", audiences=(AUDIENCE,), jwks=(cert_jwk(FUTURE),)),
            # Authlib-style: RSA keys without kid; two keys, the second signs.
            Client(
                client_id="authlib-app",
                audiences=(AUDIENCE,),
                jwks=tuple(rsa_jwk(k) for k in AUTHLIB_KEYS[:2]),
            ),
            Client(
                client_id="many-keys", audiences=(AUDIENCE,), jwks=tuple(rsa_jwk(k) for k in AUTHLIB_KEYS[:6])
            ),
        ]
    )
    settings = IssuerSettings(issuer=ISSUER, rate_limit=1000, rate_burst=1000)
    app = create_issuer_app(
        settings, store=MemoryKeyStore(), registry=registry, clock=clock, reload_loop=False
    )
    with TestClient(app, base_url=ISSUER) as tc:
        yield tc


def send(client: TC, token: str) -> Any:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER_ASSERTION_TYPE,
        "client_assertion": token,
    }
    return client.post("/oauth2/token", content=urlencode(form), headers={"content-type": FORM})


MSAL_HEADERS = {
    "PS256 x5t#S256": ("PS256", {"typ": "JWT", "x5t#S256": CERT.x5t_s256()}),
    "PS256 x5t#S256 + x5c": ("PS256", {"typ": "JWT", "x5t#S256": CERT.x5t_s256(), "x5c": CERT.x5c()}),
    "RS256 x5t (older MSAL)": ("RS256", {"typ": "JWT", "x5t": CERT.x5t()}),
    "RS256 x5t + x5c": ("RS256", {"typ": "JWT", "x5t": CERT.x5t(), "x5c": CERT.x5c()}),
    "no padding": ("PS256", {"typ": "JWT", "x5t#S256": CERT.x5t_s256(padded=False)}),
}


@pytest.mark.parametrize("case", list(MSAL_HEADERS))
def test_msal_certificate_assertions_are_accepted(client: TC, clock: FakeClock, case: str) -> None:
    alg, header = MSAL_HEADERS[case]
    token = assertion("msal-app", TOKEN_URL, CERT.key, alg=alg, header=header, now=clock.now())
    response = send(client, token)
    assert response.status_code == 200, response.text
    # The same assertion again is a replay.
    assert send(client, token).status_code == 401


def test_the_replay_state_holds_a_jti_until_its_exp(client: TC, clock: FakeClock, caplog: Any) -> None:
    alg, header = MSAL_HEADERS["PS256 x5t#S256"]
    token = assertion("msal-app", TOKEN_URL, CERT.key, alg=alg, header=header, now=clock.now(), lifetime=3600)
    assert send(client, token).status_code == 200
    clock.advance(3500)
    assert_refused(send(client, token), 401, "invalid_client", caplog, token)
    assert "already used" in refusal_reason(caplog)


@pytest.mark.parametrize("lifetime", [600, 3600])
def test_the_lifetimes_msal_and_authlib_mint_are_accepted(
    client: TC, clock: FakeClock, lifetime: int
) -> None:
    token = assertion(
        "authlib-app", TOKEN_URL, AUTHLIB_KEYS[1], alg="RS256", header={}, now=clock.now(), lifetime=lifetime
    )
    response = send(client, token)
    assert response.status_code == 200, response.text


REFUSALS = {
    "x5c of another certificate": (
        CERT.key,
        "PS256",
        {"x5t#S256": CERT.x5t_s256(), "x5c": OTHER.x5c()},
        "x5c does not hold",
    ),
    "x5c and thumbprint of another certificate, its key": (
        OTHER.key,
        "PS256",
        {"x5t#S256": OTHER.x5t_s256(), "x5c": OTHER.x5c()},
        "thumbprint names none",
    ),
    "right thumbprint, wrong key": (OTHER.key, "PS256", {"x5t#S256": CERT.x5t_s256()}, "signature"),
    "malformed x5c": (CERT.key, "PS256", {"x5t#S256": CERT.x5t_s256(), "x5c": ["not base64!"]}, "x5c"),
    "thumbprint not a string": (CERT.key, "PS256", {"x5t#S256": 5}, "thumbprint"),
    "no kid, wrong key": (OTHER.key, "PS256", {}, "signature"),
    "unknown kid": (CERT.key, "PS256", {"kid": "nope"}, "kid"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_certificate_refusals(client: TC, clock: FakeClock, caplog: Any, case: str) -> None:
    key, alg, header, reason = REFUSALS[case]
    token = assertion("msal-app", TOKEN_URL, key, alg=alg, header=header, now=clock.now())
    assert_refused(send(client, token), 401, "invalid_client", caplog, token)
    assert reason in refusal_reason(caplog)


def test_an_assertion_living_longer_than_the_maximum_is_refused(
    client: TC, clock: FakeClock, caplog: Any
) -> None:
    token = assertion(
        "authlib-app", TOKEN_URL, AUTHLIB_KEYS[0], alg="RS256", header={}, now=clock.now(), lifetime=7200
    )
    assert_refused(send(client, token), 401, "invalid_client", caplog, token)
    assert "too long" in refusal_reason(caplog)


def test_kidless_assertions_try_a_bounded_number_of_keys(client: TC, clock: FakeClock, caplog: Any) -> None:
    token = assertion("many-keys", TOKEN_URL, AUTHLIB_KEYS[5], alg="RS256", header={}, now=clock.now())
    assert_refused(send(client, token), 401, "invalid_client", caplog, token)
    assert "send kid" in refusal_reason(caplog)
    # An algorithm none of its keys may use.
    token = assertion("authlib-app", TOKEN_URL, AUTHLIB_KEYS[0], alg="PS256", header={}, now=clock.now())
    assert send(client, token).status_code == 200  # RSA keys verify PS256 too
    ec_token = jwt.encode(
        {
            "iss": "authlib-app",
            "sub": "authlib-app",
            "aud": TOKEN_URL,
            "exp": int(clock.now()) + 60,
            "jti": "x",
        },
        make_pkj().private_key,
        algorithm="ES256",
    )
    assert_refused(send(client, ec_token), 401, "invalid_client", caplog, ec_token)
    assert "algorithm" in refusal_reason(caplog)


@pytest.mark.parametrize(
    ("client_id", "cert", "advance", "reason"),
    [("msal-app", CERT, 2 * 86400, "expired"), ("future-app", FUTURE, 0, "not valid yet")],
)
def test_the_certificate_validity_period_is_respected(  # noqa: PLR0917 - pytest passes fixtures positionally
    client: TC, clock: FakeClock, caplog: Any, client_id: str, cert: ClientCert, advance: float, reason: str
) -> None:
    clock.advance(advance)
    token = assertion(
        client_id, TOKEN_URL, cert.key, alg="PS256", header={"x5t#S256": cert.x5t_s256()}, now=clock.now()
    )
    assert_refused(send(client, token), 401, "invalid_client", caplog, token)
    assert reason in refusal_reason(caplog)


def test_a_registered_certificate_must_hold_its_key() -> None:
    with pytest.raises(ConfigError, match="does not hold"):
        Client(client_id="x", audiences=(AUDIENCE,), jwks=({**rsa_jwk(OTHER.key), "x5c": CERT.x5c()},))


def test_clients_add_cert(tmp_path: Path) -> None:
    registry = f"file://{tmp_path / 'clients.json'}"
    cert_path, key_path = CERT.write(tmp_path, "msal-app")
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "clients",
            "add",
            "msal-app",
            "--audience",
            AUDIENCE,
            "--cert",
            str(cert_path),
            "--registry",
            registry,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert "client_secret" not in record and record["auth_method"] == "private_key_jwt"
    (cert,) = record["certificates"]
    assert cert["x5t#S256"] == CERT.x5t_s256(padded=False)
    assert cert["not_after"] == CERT.cert.not_valid_after_utc.timestamp()
    # A private key is refused, and never echoed.
    result = runner.invoke(
        main, ["clients", "add", "k", "--audience", AUDIENCE, "--cert", str(key_path), "--registry", registry]
    )
    assert result.exit_code != 0 and "private key" in result.output and "BEGIN" not in result.output
    expired = make_client_cert(not_before=time.time() - 7200, not_after=time.time() - 3600)
    old_path, _ = expired.write(tmp_path, "old")
    result = runner.invoke(
        main,
        ["clients", "add", "old", "--audience", AUDIENCE, "--cert", str(old_path), "--registry", registry],
    )
    assert result.exit_code != 0 and "not valid now" in result.output
