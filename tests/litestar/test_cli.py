"""``litestar s2s config|keys|token``: the plugin's commands in Litestar's own CLI.

Each command runs through ``litestar.cli.main:litestar_group`` with ``--app module:attr``, as a user
would type it. ``token`` talks to a real issuer app under uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable

import click
import httpx
import pytest
from click.testing import CliRunner, Result
from litestar import Litestar, get
from litestar.cli.main import litestar_group

from s2s.keys import KeyState, generate_key
from s2s.litestar import S2SAuthPlugin
from s2s.litestar._cli import is_loopback_url
from s2s.verify import Principal, TokenVerifier, VerifierConfig
from tests.client import conftest as client_fixtures
from tests.client.conftest import AUDIENCE as ISSUER_AUDIENCE
from tests.client.conftest import LiveIssuer
from tests.issuer.helpers import SECRET
from tests.support import free_port

ISSUER = "https://issuer.test"
KEY = generate_key("ES256", now=1_700_000_000.0, state=KeyState.CURRENT)
FETCHES: list[str] = []

# The live issuer of tests/client (uvicorn in a thread, its client "svc" with SECRET), and the
# clock it needs (real time: the tokens it mints are checked against the system clock here).
clock = client_fixtures.clock
pkj = client_fixtures.pkj
live_issuer = client_fixtures.live_issuer


def _serve(request: httpx.Request) -> httpx.Response:
    FETCHES.append(str(request.url))
    return httpx.Response(200, json={"keys": [KEY.public_jwk_entry()]})


def _broken(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, text="down")


@get("/")
async def index() -> str:
    return "ok"


def _app(config: VerifierConfig | list[VerifierConfig], handler: Callable[..., httpx.Response]) -> Litestar:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Litestar([index], plugins=[S2SAuthPlugin(config, http_client=client)], logging_config=None)


class CustomVerifier:
    async def verify(self, token: str) -> Principal:
        raise NotImplementedError


# App factories (``--app module:factory``): each CLI run gets a fresh app, as a new process would.
def app() -> Litestar:
    return _app(VerifierConfig.for_s2s(ISSUER, "orders-api"), _serve)


def two_issuers() -> Litestar:
    return _app(
        [
            VerifierConfig.for_s2s(ISSUER, ("orders-api", "billing-api"), leeway=5),
            VerifierConfig.for_entra("tenant-a", "api://orders"),
        ],
        _serve,
    )


def broken() -> Litestar:
    return _app(VerifierConfig.for_s2s(ISSUER, "orders-api"), _broken)


def custom() -> Litestar:
    return Litestar([index], plugins=[S2SAuthPlugin(CustomVerifier())], logging_config=None)


# Set by the live_app fixture: an app trusting the live issuer on its random port.
token_app: Litestar | None = None

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Runs ``litestar --app tests.litestar.test_cli:<attr> <args>`` as a fresh process would.

    litestar_group is a module-level object that adds the app's plugin commands once and keeps
    them; each call starts from its original commands so that every app gets its own."""
    original = dict(litestar_group.commands)
    monkeypatch.setattr(litestar_group, "commands", original)
    # The Litestar CLI writes LITESTAR_APP into os.environ; the monkeypatch restores it.
    monkeypatch.delenv("LITESTAR_APP", raising=False)
    for name in ("S2S_ISSUER", "S2S_CLIENT_ID", "S2S_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)

    def run(attr: str, *args: str, env: dict[str, str] | None = None) -> Result:
        litestar_group.commands = dict(original)
        monkeypatch.setattr(litestar_group, "_prepare_done", False)
        return CliRunner().invoke(litestar_group, ["--app", f"{__name__}:{attr}", *args], env=env)

    return run


def one_line_error(result: Result) -> str:
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("litestar s2s: error:")]
    assert len(lines) == 1, result.output
    return lines[0].removeprefix("litestar s2s: error: ")


def test_group_lists_its_commands(invoke: Invoke) -> None:
    result = invoke("app", "s2s", "--help")
    assert result.exit_code == 0, result.output
    for name in ("config", "keys", "token"):
        assert name in result.output


def test_config_json_is_the_verifier_configuration_without_fetching(invoke: Invoke) -> None:
    FETCHES.clear()
    result = invoke("two_issuers", "s2s", "config", "--json")
    assert result.exit_code == 0, result.output
    ours, entra = json.loads(result.output)
    assert ours["issuer"] == ISSUER
    assert ours["audiences"] == ["orders-api", "billing-api"]
    assert ours["algorithms"] == ["ES256", "Ed25519", "PS256", "RS256"]
    assert ours["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert ours["leeway"] == 5
    assert ours["typ"] == ["at+jwt"]
    assert entra["issuer"] == "https://login.microsoftonline.com/tenant-a/v2.0"
    assert entra["audiences"] == ["api://orders"]
    assert FETCHES == []


def test_config_human(invoke: Invoke) -> None:
    result = invoke("two_issuers", "s2s", "config")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"issuer         {ISSUER}" in lines
    assert "audiences      orders-api, billing-api" in lines
    assert "leeway         5s" in lines
    assert "typ            at+jwt" in lines
    assert "issuer         https://login.microsoftonline.com/tenant-a/v2.0" in lines


def test_keys_fetches_the_jwks_and_shows_public_data_only(invoke: Invoke) -> None:
    FETCHES.clear()
    result = invoke("app", "s2s", "keys", "--json")
    assert result.exit_code == 0, result.output
    assert [f"{ISSUER}/.well-known/jwks.json"] == FETCHES
    [entry] = json.loads(result.output)
    assert entry["issuer"] == ISSUER
    assert entry["fetched"] is True
    assert entry["keys"] == [{"kid": KEY.kid, "kty": "EC", "crv": "P-256", "alg": "ES256"}]
    assert KEY.private_jwk is not None
    assert str(KEY.private_jwk["d"]) not in result.output


def test_keys_human_table(invoke: Invoke) -> None:
    result = invoke("app", "s2s", "keys")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if KEY.kid in line)
    assert row.split() == [KEY.kid, "EC", "P-256", "ES256"]


def test_keys_without_fetch_does_not_fetch(invoke: Invoke) -> None:
    FETCHES.clear()
    result = invoke("app", "s2s", "keys", "--no-fetch", "--json")
    assert result.exit_code == 0, result.output
    assert FETCHES == []
    [entry] = json.loads(result.output)
    assert entry["fetched"] is False
    assert entry["keys"] == []


def test_keys_that_cannot_be_fetched_is_a_one_line_error(invoke: Invoke) -> None:
    result = invoke("broken", "s2s", "keys")
    assert one_line_error(result) == f"could not fetch the keys of {ISSUER}"


def test_a_custom_verifier_has_no_known_configuration(invoke: Invoke) -> None:
    for command in ("config", "keys"):
        line = one_line_error(invoke("custom", "s2s", command))
        assert "CustomVerifier, not a TokenVerifier" in line


# -- token ---------------------------------------------------------------------------------------
@pytest.fixture
def live_app(live_issuer: LiveIssuer, monkeypatch: pytest.MonkeyPatch) -> LiveIssuer:
    trusted = VerifierConfig.for_s2s(live_issuer.url, ISSUER_AUDIENCE)
    monkeypatch.setattr(
        sys.modules[__name__],
        "token_app",
        Litestar([index], plugins=[S2SAuthPlugin(trusted)], logging_config=None),
    )
    return live_issuer


def verified(issuer: str, token: str, audience: str = ISSUER_AUDIENCE) -> Principal:
    async def check() -> Principal:
        async with TokenVerifier(VerifierConfig.for_s2s(issuer, audience)) as verifier:
            return await verifier.verify(token)

    return asyncio.run(check())


def test_token_from_the_local_issuer_with_the_verifiers_defaults(
    invoke: Invoke, live_app: LiveIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = invoke(
        "token_app",
        "s2s",
        "token",
        "--client-id",
        "svc",
        "--scope",
        "orders:read",
        env={"S2S_CLIENT_SECRET": SECRET},
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert result.output == token + "\n"  # the token and nothing else
    principal = verified(live_app.url, token)
    assert principal.issuer == live_app.url  # default issuer: the one the verifier trusts
    assert principal.audience == (ISSUER_AUDIENCE,)  # default audience: the verifier's
    assert principal.scopes == frozenset({"orders:read"})
    assert SECRET not in result.output and SECRET not in caplog.text


def test_token_with_explicit_issuer_and_audience(invoke: Invoke, live_app: LiveIssuer) -> None:
    result = invoke(
        "custom",  # an app whose verifier says nothing: everything comes from the options
        "s2s",
        "token",
        "--issuer",
        live_app.url.replace("127.0.0.1", "localhost"),
        "--token-endpoint",
        f"{live_app.url}/oauth2/token",
        "--client-id",
        "svc",
        "--client-secret",
        SECRET,
        "--audience",
        client_fixtures.OTHER_AUDIENCE,
    )
    assert result.exit_code == 0, result.output
    principal = verified(live_app.url, result.output.strip(), client_fixtures.OTHER_AUDIENCE)
    assert principal.audience == (client_fixtures.OTHER_AUDIENCE,)


def test_token_refused_by_the_issuer_is_a_one_line_error(
    invoke: Invoke, live_app: LiveIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-secret-Xy7Q-0123456789"
    result = invoke("token_app", "s2s", "token", "--client-id", "svc", env={"S2S_CLIENT_SECRET": wrong})
    assert one_line_error(result).startswith("invalid_client")
    assert wrong not in result.output and wrong not in caplog.text


def test_token_refuses_a_remote_issuer_unless_allowed(invoke: Invoke, live_app: LiveIssuer) -> None:
    secret = {"S2S_CLIENT_SECRET": SECRET}
    refused = invoke(
        "token_app",
        "s2s",
        "token",
        "--issuer",
        "https://issuer.example.com",
        "--client-id",
        "svc",
        env=secret,
    )
    assert "--allow-remote" in one_line_error(refused)
    assert SECRET not in refused.output
    # 0.0.0.0 is not a loopback address, but Linux connects it to this host: --allow-remote is
    # what lets the request go out.
    port = live_app.url.rsplit(":", 1)[1]
    remote = ["--token-endpoint", f"http://0.0.0.0:{port}/oauth2/token", "--client-id", "svc"]
    assert "--allow-remote" in one_line_error(invoke("token_app", "s2s", "token", *remote, env=secret))
    allowed = invoke("token_app", "s2s", "token", *remote, "--allow-remote", env=secret)
    assert allowed.exit_code == 0, allowed.output
    assert verified(live_app.url, allowed.output.strip()).client_id == "svc"


def test_token_from_an_issuer_that_is_down(invoke: Invoke) -> None:
    issuer = f"http://127.0.0.1:{free_port()}"
    result = invoke(
        "app", "s2s", "token", "--issuer", issuer, "--client-id", "svc", env={"S2S_CLIENT_SECRET": SECRET}
    )
    assert one_line_error(result).startswith("temporarily_unavailable")
    assert SECRET not in result.output


def test_token_needs_a_client_secret(invoke: Invoke) -> None:
    result = invoke("app", "s2s", "token", "--client-id", "svc")
    assert result.exit_code == 2
    assert "--client-secret" in result.output


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://127.9.9.9", True),
        ("http://localhost:8000/x", True),
        ("http://[::1]:8000", True),
        ("https://issuer.example.com", False),
        ("http://localhost.example.com", False),
        ("http://10.0.0.1", False),
        ("http://[::1", False),
        ("not a url", False),
    ],
)
def test_is_loopback_url(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_commands_are_plain_click() -> None:
    group = click.Group("litestar")
    S2SAuthPlugin(VerifierConfig.for_s2s(ISSUER, "orders-api")).on_cli_init(group)
    s2s = group.commands["s2s"]
    assert isinstance(s2s, click.Group)
    assert sorted(s2s.commands) == ["config", "keys", "token"]
    assert sorted(group.commands) == ["s2s"]
