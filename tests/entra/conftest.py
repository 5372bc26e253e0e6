"""Local HTTPS doubles for Entra ID and Microsoft Graph, served with a certificate from a test CA.

Everything binds 127.0.0.1 and is shut down by the fixture that started it. MSAL talks to the fake
Entra ID through a ``requests.Session`` with ``trust_env=False`` (this machine sets
REQUESTS_CA_BUNDLE, which would override ``verify=``) and ``verify=<test CA>``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from joserfc import jwt
from joserfc.jwk import ECKey

from s2s.clock import FakeClock
from s2s.entra import ClientSecret, EntraApp
from tests.support_tls import LocalCA, make_local_ca
from tests.support_tls import x509_name as _name

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CLIENT_SECRET = "fake-entra-client-secret-Zq9~"
RESERVED = {"openid", "profile", "offline_access"}


# -- test CA -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return make_local_ca(tmp_path_factory.mktemp("ca"))


# -- a tiny threaded HTTPS server ------------------------------------------------------------------
@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    form: dict[str, str]


Reply = tuple[int, dict[str, str], Any]
Handler = Callable[[Recorded], Reply]


class HTTPSServer:
    def __init__(self, ca: LocalCA, handler: Handler, delay: float = 0.0) -> None:
        outer = self
        self.requests: list[Recorded] = []
        self.delay = delay
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
                rec = Recorded(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    form,
                )
                with outer._lock:
                    outer.requests.append(rec)
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                try:
                    if outer.delay:
                        time.sleep(outer.delay)
                    status, headers, payload = handler(rec)
                finally:
                    with outer._lock:
                        outer.active -= 1
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve
            do_POST = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ca.server_context().wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


# -- fake Entra ID -------------------------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unverified_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def unverified_header(token: str) -> dict[str, Any]:
    head = token.split(".", maxsplit=1)[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


@dataclass
class FakeEntra:
    """Discovery + v2 token endpoint. ``script`` replies are used, in order, before normal handling."""

    ca: LocalCA
    tenant: str = TENANT
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    expires_in: int = 3600
    script: deque[Reply] = field(default_factory=deque)
    issued: list[str] = field(default_factory=list)
    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256", private=True))
    server: HTTPSServer = field(init=False)

    def __post_init__(self) -> None:
        self.server = HTTPSServer(self.ca, self.handle)

    @property
    def host(self) -> str:
        return self.server.url

    @property
    def authority(self) -> str:
        return f"{self.server.url}/{self.tenant}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.authority}/oauth2/v2.0/token"

    @property
    def token_requests(self) -> list[Recorded]:
        return [r for r in self.server.requests if r.method == "POST"]

    def error(self, status: int, error: str, description: str, **extra: Any) -> Reply:
        body = {
            "error": error,
            "error_description": description,
            "error_codes": [extra.pop("code", 50000)],
            "correlation_id": str(uuid.uuid4()),
            **extra,
        }
        return status, {}, body

    def handle(self, rec: Recorded) -> Reply:
        base = self.authority
        if rec.method == "GET" and rec.path == f"/{self.tenant}/v2.0/.well-known/openid-configuration":
            return (
                200,
                {},
                {
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": self.token_endpoint,
                    "jwks_uri": f"{base}/discovery/v2.0/keys",
                    "response_types_supported": ["code", "id_token", "token"],
                    "subject_types_supported": ["pairwise"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                },
            )
        if rec.method != "POST" or rec.path != f"/{self.tenant}/oauth2/v2.0/token":
            return 404, {}, {"error": "not_found"}
        if self.script:
            return self.script.popleft()
        form = rec.form
        if form.get("client_id") != self.client_id:
            return self.error(400, "unauthorized_client", "AADSTS700016: Application not found.", code=700016)
        if "client_secret" in form:
            if form["client_secret"] != self.client_secret:
                return self.error(
                    401, "invalid_client", "AADSTS7000215: Invalid client secret provided.", code=7000215
                )
        elif form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return self.error(
                401, "invalid_client", "AADSTS7000216: client_assertion or client_secret required."
            )
        scopes = form.get("scope", "").split()
        api_scopes = [s for s in scopes if s not in RESERVED]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": f"https://sts.fake/{self.tenant}/v2.0",
            "tid": self.tenant,
            "iat": now,
            "nbf": now,
            "exp": now + self.expires_in,
            "uti": uuid.uuid4().hex,
        }
        if form.get("grant_type") == "client_credentials":
            claims.update(sub=self.client_id, azp=self.client_id, roles=["App.Read"])
            claims["aud"] = api_scopes[0].removesuffix("/.default") if api_scopes else ""
        elif (
            form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer"
            and form.get("requested_token_use") == "on_behalf_of"
        ):
            try:
                user = unverified_claims(form["assertion"])
            except Exception:
                return self.error(400, "invalid_grant", "AADSTS50027: JWT token is invalid or malformed.")
            claims.update(
                sub=user.get("sub"),
                azp=self.client_id,
                scp=" ".join(s.rsplit("/", 1)[-1] for s in api_scopes),
            )
            claims["aud"] = api_scopes[0].rsplit("/", 1)[0] if api_scopes else ""
        else:
            return self.error(400, "unsupported_grant_type", "unsupported grant")
        token = jwt.encode({"alg": "ES256", "typ": "JWT"}, claims, self.key, algorithms=["ES256"])
        self.issued.append(token)
        return (
            200,
            {},
            {
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "ext_expires_in": self.expires_in,
                "access_token": token,
            },
        )


def user_token(sub: str = "user-1", **extra: Any) -> str:
    """An incoming user token (signature irrelevant: the fake Entra ID only reads its claims)."""
    key = ECKey.generate_key("P-256", private=True)
    claims = {
        "sub": sub,
        "aud": f"api://{CLIENT_ID}",
        "scp": "access_as_user",
        "exp": int(time.time()) + 3600,
        **extra,
    }
    return jwt.encode({"alg": "ES256", "typ": "JWT"}, claims, key, algorithms=["ES256"])


@pytest.fixture
def entra(test_ca: LocalCA) -> Iterator[FakeEntra]:
    fake = FakeEntra(test_ca)
    yield fake
    fake.server.close()


@dataclass
class Sleeps:
    calls: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_app(
    entra: FakeEntra, test_ca: LocalCA, clock: FakeClock, sleeps: Sleeps
) -> Iterator[Callable[..., EntraApp]]:
    made: list[EntraApp] = []
    sessions: list[requests.Session] = []

    def build(credential: Any = None, **kwargs: Any) -> EntraApp:
        session = test_ca.session()
        sessions.append(session)
        kwargs.setdefault("authority", entra.authority)
        kwargs.setdefault("http_client", session)
        kwargs.setdefault("sleep", sleeps)
        kwargs.setdefault("clock", clock)
        app = EntraApp(
            entra.tenant, entra.client_id, credential or ClientSecret(entra.client_secret), **kwargs
        )
        made.append(app)
        return app

    yield build
    for app in made:
        app.close()
    for s in sessions:
        s.close()


# -- client certificates ---------------------------------------------------------------------------
@dataclass
class ClientCert:
    key_pem: str
    cert_pem: str
    cert: x509.Certificate
    thumbprint_sha1: str
    pfx: bytes
    pfx_password: str


@pytest.fixture(scope="session")
def client_cert() -> ClientCert:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("s2s test app"))
        .issuer_name(_name("s2s test app"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    password = "pfx-pass-Y7"
    pfx = pkcs12.serialize_key_and_certificates(
        b"app", key, cert, None, serialization.BestAvailableEncryption(password.encode())
    )
    return ClientCert(
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        cert=cert,
        thumbprint_sha1=hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper(),
        pfx=pfx,
        pfx_password=password,
    )


# -- fake Microsoft Graph ------------------------------------------------------------------------
@dataclass
class FakeGraph:
    ca: LocalCA
    accepted: Callable[[str], bool]
    script: deque[Reply] = field(default_factory=deque)
    server: HTTPSServer = field(init=False)

    def __post_init__(self) -> None:
        self.server = HTTPSServer(self.ca, self.handle)

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1.0"

    def handle(self, rec: Recorded) -> Reply:
        if self.script:
            return self.script.popleft()
        auth = rec.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or not self.accepted(token):
            return (
                401,
                {"WWW-Authenticate": 'Bearer realm=""'},
                {
                    "error": {
                        "code": "InvalidAuthenticationToken",
                        "message": "Access token validation failure.",
                    }
                },
            )
        if rec.path == "/v1.0/me":
            sub = unverified_claims(token).get("sub")
            return (
                200,
                {},
                {"id": f"id-{sub}", "displayName": "Test User", "userPrincipalName": f"{sub}@example.test"},
            )
        return (
            404,
            {},
            {
                "error": {
                    "code": "Request_ResourceNotFound",
                    "message": f"Resource '{rec.path}' does not exist.",
                }
            },
        )


@pytest.fixture
def graph(test_ca: LocalCA, entra: FakeEntra) -> Iterator[FakeGraph]:
    fake = FakeGraph(test_ca, accepted=lambda t: t in entra.issued)
    yield fake
    fake.server.close()


@pytest.fixture
def anyio_backend() -> str:
    # MSAL work runs in anyio worker threads; asyncio is what Litestar apps run on.
    return "asyncio"
