"""``litestar s2s-verifier``: what the app trusts, as JSON, public data only."""

from __future__ import annotations

import json

import httpx
from click.testing import CliRunner
from litestar import Litestar, get
from litestar.cli.main import litestar_group

from s2s.keys.model import KeyState, generate_key
from s2s.litestar import S2SAuthPlugin
from s2s.verify import VerifierConfig

ISSUER = "https://issuer.test"
KEY = generate_key("ES256", now=1_700_000_000.0, state=KeyState.CURRENT)
FETCHES: list[str] = []


def _serve(request: httpx.Request) -> httpx.Response:
    FETCHES.append(str(request.url))
    return httpx.Response(200, json={"keys": [KEY.public_jwk_entry()]})


@get("/")
async def index() -> str:
    return "ok"


app = Litestar(
    [index],
    plugins=[
        S2SAuthPlugin(
            VerifierConfig.for_s2s(ISSUER, "orders-api"),
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(_serve)),
        )
    ],
    logging_config=None,
)


def test_cli_lists_issuers_and_kids_without_private_material() -> None:
    FETCHES.clear()
    result = CliRunner().invoke(litestar_group, ["--app", f"{__name__}:app", "s2s-verifier"])
    assert result.exit_code == 0, result.output
    described = json.loads(result.output)
    assert [f"{ISSUER}/.well-known/jwks.json"] == FETCHES
    assert described[0]["issuer"] == ISSUER
    assert described[0]["audiences"] == ["orders-api"]
    assert described[0]["kids"] == [KEY.kid]
    assert KEY.private_jwk is not None
    assert str(KEY.private_jwk["d"]) not in result.output
    assert '"d"' not in result.output


def test_cli_without_fetch_does_not_fetch() -> None:
    FETCHES.clear()
    result = CliRunner().invoke(litestar_group, ["--app", f"{__name__}:app", "s2s-verifier", "--no-fetch"])
    assert result.exit_code == 0, result.output
    assert FETCHES == []
    assert json.loads(result.output)[0]["issuer"] == ISSUER
