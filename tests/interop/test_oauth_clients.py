"""The OAuth clients people already run, with their defaults, against a real ``s2s serve`` over
HTTPS (test CA): MSAL Python and MSAL Node (discovery only, ``/.default`` scopes, a secret and a
certificate, the second call served from MSAL's own cache) and Authlib (``client_secret_basic``,
``client_secret_post``, ``PrivateKeyJWT``; sync and async httpx clients). Every token is verified
by the s2s plugin, configured by discovery of the same issuer. The refusals go through the same
clients. Versions are printed with each result."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import authlib
import httpx
import msal
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives import hashes
from joserfc.jwk import RSAKey
from litestar import Litestar, get
from litestar.testing import TestClient

from s2s.litestar import PrincipalDep, S2SAuthPlugin, requires_features
from s2s.verify import VerifierConfig
from tests.interop.conftest import HERE, NODE, ResourceService, node_version, require_node_modules
from tests.interop.tls_issuer import IssuerDir, TlsIssuer, serve_tls
from tests.issuer.cert_helpers import make_client_cert
from tests.support_tls import LocalCA

__all__: list[str] = []

pytestmark = pytest.mark.interop

ORDERS = "https://orders.clients.test"
BILLING = "https://billing.clients.test"
CERT = make_client_cert("msal-cert-app")
UNREGISTERED = make_client_cert("unregistered")
AUTHLIB_KEY = make_client_cert("authlib-pkj")  # its key only (Authlib registers a JWKS)


@dataclass
class Deployment:
    issuer: TlsIssuer
    secrets: dict[str, str]


@pytest.fixture(scope="module")
def deployment(interop_ca: LocalCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("oauth-clients")
    issuer_dir = IssuerDir.create(root)
    secrets = {}
    # One secret client allowed two audiences: MSAL picks one with `<audience>/.default`.
    for client_id in ("multi", "authlib-secret"):
        record = issuer_dir.add_client(
            client_id,
            "--audience",
            ORDERS,
            "--audience",
            BILLING,
            "--scope",
            "orders:read",
            "--scope",
            "billing:read",
        )
        secrets[client_id] = record["client_secret"]
    cert_path, _ = CERT.write(root, "msal-cert")
    issuer_dir.add_client(
        "msal-cert", "--audience", ORDERS, "--scope", "orders:read", "--cert", str(cert_path)
    )
    # Authlib's PrivateKeyJWT: a JWKS whose key has no kid; its assertions carry none either.
    jwks = root / "authlib.jwks.json"
    jwk = RSAKey.import_key(AUTHLIB_KEY.key.public_key()).as_dict(private=False)  # type: ignore[arg-type]
    jwks.write_text(json.dumps({"keys": [jwk]}))
    issuer_dir.add_client("authlib-pkj", "--audience", ORDERS, "--scope", "orders:read", "--jwks", str(jwks))
    # ioserver-oidc's shape: features as an object.
    features = json.dumps({"beta": True, "limit": 5, "off": False})
    record = issuer_dir.add_client("featured", "--audience", ORDERS, "--features-json", features)
    secrets["featured"] = record["client_secret"]
    # MSAL Python needs a path segment in its authority: the issuer URL has one.
    with serve_tls(issuer_dir, interop_ca, issuer_path="/s2s") as issuer:
        yield Deployment(issuer, secrets)
        log = issuer.log_text()
    for secret in secrets.values():
        assert secret not in log


def accepted_by_plugin(issuer: TlsIssuer, token: str, audience: str, ran: str) -> dict[str, Any]:
    service = ResourceService(issuer.url, audience, issuer.ca)
    with TestClient(service.app()) as client:
        response = client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, f"{ran}: {response.status_code} {response.text}"
    body: dict[str, Any] = response.json()
    assert body["iss"] == issuer.url and body["aud"] == [audience], f"{ran}: {body}"
    return body


# -- MSAL Python -----------------------------------------------------------------------------------


def msal_app(
    deployment: Deployment, client_id: str, credential: Any
) -> tuple[msal.ConfidentialClientApplication, Any]:
    # trust_env=False and the test CA: REQUESTS_CA_BUNDLE is set on these machines and would win.
    session = deployment.issuer.ca.session()
    app = msal.ConfidentialClientApplication(
        client_id, client_credential=credential, oidc_authority=deployment.issuer.url, http_client=session
    )
    return app, session


@pytest.mark.parametrize("audience", [ORDERS, BILLING])
def test_msal_python_client_secret(deployment: Deployment, audience: str) -> None:
    ran = f"MSAL Python {msal.__version__} (secret, {audience}/.default) -> s2s serve over TLS"
    print(ran)
    app, session = msal_app(deployment, "multi", deployment.secrets["multi"])
    with session:
        first = app.acquire_token_for_client(scopes=[f"{audience}/.default"])
        assert "access_token" in first, f"{ran}: {first.get('error')}: {first.get('error_description')}"
        assert first["token_source"] == "identity_provider", ran
        again = app.acquire_token_for_client(scopes=[f"{audience}/.default"])
        assert again["token_source"] == "cache" and again["access_token"] == first["access_token"], ran
    body = accepted_by_plugin(deployment.issuer, first["access_token"], audience, ran)
    assert body["client_id"] == "multi" and body["scopes"] == ["billing:read", "orders:read"], body


MSAL_CERT_CREDENTIALS = {
    # PS256 + x5t#S256 + x5c (the certificate is sent).
    "certificate": lambda: {"private_key": CERT.key_pem.decode(), "public_certificate": CERT.pem.decode()},
    # Older style: a SHA-1 thumbprint given by hand, RS256 + x5t.
    "sha1 thumbprint": lambda: {
        "private_key": CERT.key_pem.decode(),
        "thumbprint": CERT.cert.fingerprint(hashes.SHA1()).hex(),
    },
}


@pytest.mark.parametrize("style", list(MSAL_CERT_CREDENTIALS))
def test_msal_python_certificate(deployment: Deployment, style: str) -> None:
    ran = f"MSAL Python {msal.__version__} (certificate, {style}) -> s2s serve over TLS"
    print(ran)
    app, session = msal_app(deployment, "msal-cert", MSAL_CERT_CREDENTIALS[style]())
    with session:
        first = app.acquire_token_for_client(scopes=[f"{ORDERS}/.default"])
        assert "access_token" in first, f"{ran}: {first.get('error')}: {first.get('error_description')}"
        again = app.acquire_token_for_client(scopes=[f"{ORDERS}/.default"])
        assert again["token_source"] == "cache" and again["access_token"] == first["access_token"], ran
    assert (
        accepted_by_plugin(deployment.issuer, first["access_token"], ORDERS, ran)["client_id"] == "msal-cert"
    )


MSAL_REFUSALS = {
    # A certificate (and key) the client never registered: its thumbprint names nothing.
    "unregistered certificate": (
        "msal-cert",
        lambda: {
            "private_key": UNREGISTERED.key_pem.decode(),
            "public_certificate": UNREGISTERED.pem.decode(),
        },
        [f"{ORDERS}/.default"],
        "invalid_client",
    ),
    # The registered certificate, signed with another key (x5c and thumbprint name the registered one).
    "wrong key": (
        "msal-cert",
        lambda: {"private_key": UNREGISTERED.key_pem.decode(), "public_certificate": CERT.pem.decode()},
        [f"{ORDERS}/.default"],
        "invalid_client",
    ),
    ".default mixed with another scope": (
        "multi",
        None,
        [f"{ORDERS}/.default", "orders:read"],
        "invalid_scope",
    ),
    ".default of an audience not allowed": (
        "multi",
        None,
        ["https://other.clients.test/.default"],
        "invalid_scope",
    ),
}


@pytest.mark.parametrize("case", list(MSAL_REFUSALS))
def test_msal_python_refusals(deployment: Deployment, case: str) -> None:
    client_id, credential, scopes, error = MSAL_REFUSALS[case]
    ran = f"MSAL Python {msal.__version__} ({case})"
    app, session = msal_app(
        deployment, client_id, credential() if credential else deployment.secrets["multi"]
    )
    with session:
        result = app.acquire_token_for_client(scopes=scopes)
    assert "access_token" not in result and result.get("error") == error, f"{ran}: {result}"


# -- MSAL Node -------------------------------------------------------------------------------------


def msal_node(deployment: Deployment, tmp_path: Path, config: dict[str, Any]) -> dict[str, Any]:
    require_node_modules("@azure/msal-node")
    path = tmp_path / "msal-node.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # a secret or a private key
    with os.fdopen(fd, "w") as f:
        json.dump({"authority": deployment.issuer.url, **config}, f)
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update({"NODE_EXTRA_CA_CERTS": str(deployment.issuer.ca.ca_path), "NODE_NO_WARNINGS": "1"})
    done = subprocess.run(
        [NODE, str(HERE / "msal_node_client.mjs"), str(path)],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout)
    return out


MSAL_NODE_CREDENTIALS = {
    "secret": lambda d: ("multi", {"clientSecret": d.secrets["multi"]}),
    "certificate": lambda d: (
        "msal-cert",
        {
            "clientCertificate": {
                "thumbprintSha256": CERT.cert.fingerprint(hashes.SHA256()).hex(),
                "privateKey": CERT.key_pem.decode(),
                "x5c": CERT.pem.decode(),
            }
        },
    ),
}


@pytest.mark.parametrize("style", list(MSAL_NODE_CREDENTIALS))
def test_msal_node(deployment: Deployment, tmp_path: Path, style: str) -> None:
    client_id, credential = MSAL_NODE_CREDENTIALS[style](deployment)
    out = msal_node(
        deployment,
        tmp_path,
        {"clientId": client_id, "scopes": [f"{ORDERS}/.default"], "calls": 2, **credential},
    )
    ran = f"MSAL Node {out['version']} on Node {node_version()} ({style}, OIDC mode) -> s2s serve"
    print(ran)
    first, again = out["calls"]
    assert "accessToken" in first, f"{ran}: {first}"
    assert first["fromCache"] is False and again.get("fromCache") is True, f"{ran}: {again}"
    assert again["accessToken"] == first["accessToken"], ran
    assert accepted_by_plugin(deployment.issuer, first["accessToken"], ORDERS, ran)["client_id"] == client_id


def test_msal_node_refuses_mixed_default_scope(deployment: Deployment, tmp_path: Path) -> None:
    out = msal_node(
        deployment,
        tmp_path,
        {
            "clientId": "multi",
            "clientSecret": deployment.secrets["multi"],
            "scopes": [f"{ORDERS}/.default", "orders:read"],
        },
    )
    (result,) = out["calls"]
    assert "accessToken" not in result and "invalid_scope" in json.dumps(result), result


# -- Authlib ---------------------------------------------------------------------------------------


def authlib_client(
    deployment: Deployment, client_id: str, secret: Any, method: Any, **kwargs: Any
) -> OAuth2Client:
    return OAuth2Client(
        client_id,
        secret,
        token_endpoint_auth_method=method,
        verify=deployment.issuer.ca.client_context(),
        trust_env=False,
        timeout=10,
        **kwargs,
    )


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_secret(deployment: Deployment, method: str) -> None:
    ran = f"Authlib {authlib.__version__} OAuth2Client ({method}) -> s2s serve over TLS"
    print(ran)
    with authlib_client(deployment, "authlib-secret", deployment.secrets["authlib-secret"], method) as client:
        token = client.fetch_token(
            deployment.issuer.token_endpoint, grant_type="client_credentials", audience=BILLING
        )
    accepted_by_plugin(deployment.issuer, token["access_token"], BILLING, ran)


def private_key_jwt(deployment: Deployment, key_pem: bytes, **auth: Any) -> OAuth2Client:
    client = authlib_client(deployment, "authlib-pkj", key_pem.decode(), "private_key_jwt")
    client.register_client_auth_method(PrivateKeyJWT(deployment.issuer.token_endpoint, **auth))
    return client


def test_authlib_private_key_jwt(deployment: Deployment) -> None:
    ran = f"Authlib {authlib.__version__} OAuth2Client (PrivateKeyJWT defaults: RS256, no kid, 1 h)"
    print(ran)
    with private_key_jwt(deployment, AUTHLIB_KEY.key_pem) as client:
        token = client.fetch_token(deployment.issuer.token_endpoint, grant_type="client_credentials")
    accepted_by_plugin(deployment.issuer, token["access_token"], ORDERS, ran)


def test_authlib_async_client(deployment: Deployment) -> None:
    ran = f"Authlib {authlib.__version__} AsyncOAuth2Client (client_secret_basic)"
    print(ran)

    async def fetch() -> dict[str, Any]:
        async with AsyncOAuth2Client(
            "authlib-secret",
            deployment.secrets["authlib-secret"],
            verify=deployment.issuer.ca.client_context(),
            trust_env=False,
            timeout=10,
        ) as client:
            token: dict[str, Any] = await client.fetch_token(
                deployment.issuer.token_endpoint, grant_type="client_credentials", audience=ORDERS
            )
            return token

    token = anyio.run(fetch)
    accepted_by_plugin(deployment.issuer, token["access_token"], ORDERS, ran)


AUTHLIB_REFUSALS = {
    "wrong key": (UNREGISTERED.key_pem, {}, "signature"),
    "x5c naming another key": (
        AUTHLIB_KEY.key_pem,
        {"headers": {"x5c": UNREGISTERED.x5c()}},
        "x5c",
    ),
    "lifetime beyond the maximum": (
        AUTHLIB_KEY.key_pem,
        {"claims": {"exp": int(time.time()) + 7200}},
        "too long",
    ),
}


@pytest.mark.parametrize("case", list(AUTHLIB_REFUSALS))
def test_authlib_private_key_jwt_refusals(deployment: Deployment, case: str) -> None:
    key_pem, auth, reason = AUTHLIB_REFUSALS[case]
    with private_key_jwt(deployment, key_pem, **auth) as client, pytest.raises(OAuthError) as refused:
        client.fetch_token(deployment.issuer.token_endpoint, grant_type="client_credentials")
    # Every client-authentication failure gets the same invalid_client (no enumeration, issue 9);
    # the precise reason is in the issuer's log.
    assert refused.value.error == "invalid_client", refused.value
    failures = [
        line for line in deployment.issuer.log_text().splitlines() if "client authentication failed" in line
    ]
    assert failures and reason in failures[-1], failures[-3:]


# -- features as an object, through the plugin ---------------------------------------------------


@get("/beta", guards=[requires_features("beta")])
async def beta(principal: PrincipalDep) -> dict[str, Any]:
    return {"features": sorted(principal.features), "values": dict(principal.feature_values)}


@get("/off", guards=[requires_features("off")])
async def off() -> str:
    return "never"


def test_features_as_an_object_pass_requires_features(deployment: Deployment) -> None:
    ran = f"Authlib {authlib.__version__} -> s2s serve (features object) -> s2s plugin requires_features"
    print(ran)
    with authlib_client(
        deployment, "featured", deployment.secrets["featured"], "client_secret_basic"
    ) as client:
        token = client.fetch_token(deployment.issuer.token_endpoint, grant_type="client_credentials")
    http = httpx.AsyncClient(verify=deployment.issuer.ca.client_context(), trust_env=False)
    config = VerifierConfig.from_discovery(deployment.issuer.url, audience=ORDERS)
    app = Litestar([beta, off], plugins=[S2SAuthPlugin(config, http_client=http)], on_shutdown=[http.aclose])
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    with TestClient(app) as tc:
        allowed = tc.get("/beta", headers=headers)
        assert allowed.status_code == 200, f"{ran}: {allowed.text}"
        assert allowed.json() == {
            "features": ["beta", "limit"],
            "values": {"beta": True, "limit": 5, "off": False},
        }
        assert tc.get("/off", headers=headers).status_code == 403, ran
