"""The client registry in AWS Secrets Manager (moto in-process): issuer, reload, CAS, CLI."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import boto3
import httpx
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from s2s.aws import PENDING_STAGE, SecretsManager, SecretsManagerDocument
from s2s.cli import main
from s2s.client import AsyncTokenClient, TokenRequestError
from s2s.clock import FakeClock
from s2s.errors import ConfigError, S2SError
from s2s.issuer import (
    REGISTRY_FORMAT,
    Client,
    IssuerSettings,
    RegistryError,
    SecretsManagerClientRegistry,
    open_client_registry,
)
from s2s.keys import RotationPolicy
from s2s.litestar.issuer import IssuerRuntime, create_issuer_app
from tests.issuer.helpers import AUDIENCE, ISSUER, SECRET, SECRET_HASH, basic
from tests.support import MemoryKeyStore

NAME = "s2s/test-clients"
URL = f"aws-sm://{NAME}"
FORM = {"grant_type": "client_credentials"}


def client(client_id: str, **options: Any) -> Client:
    return Client(client_id=client_id, audiences=(AUDIENCE,), secret_hash=SECRET_HASH, **options)


def stored(sm: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        sm.get_secret_value(SecretId=NAME, VersionStage="AWSCURRENT")["SecretString"]
    )
    return doc


def issuer(clock: FakeClock, registry: Any = None) -> Any:
    settings = IssuerSettings(
        issuer=ISSUER, clients=URL, rotation=RotationPolicy(), rate_limit=1000, rate_burst=1000
    )
    return create_issuer_app(
        settings, store=MemoryKeyStore(), registry=registry, clock=clock, reload_loop=False
    )


def test_add_get_remove_and_the_document(sm: Any, clock: FakeClock) -> None:
    registry = SecretsManagerClientRegistry(NAME, sm, clock=clock, background=False)
    assert registry.get("a") is None and registry.all() == ()  # no secret yet: an empty registry
    registry.add(client("a", scopes=("x",)))
    registry.add(client("b"))
    with pytest.raises(ConfigError, match="already exists"):
        registry.add(client("a"))
    registry.add(client("a", scopes=("y",)), replace_existing=True)
    assert [c.client_id for c in registry.all()] == ["a", "b"]
    doc = stored(sm)
    assert doc["format"] == REGISTRY_FORMAT and [c["client_id"] for c in doc["clients"]] == ["a", "b"]
    assert doc["clients"][0]["secret_hash"] == SECRET_HASH
    registry.remove("b")
    with pytest.raises(ConfigError, match="no client"):
        registry.remove("b")
    assert [c.client_id for c in registry.all()] == ["a"]
    assert registry.get("a") == client("a", scopes=("y",))
    stages = sm.describe_secret(SecretId=NAME)["VersionIdsToStages"]
    assert not any(PENDING_STAGE in labels for labels in stages.values())


def test_concurrent_writers_lose_no_client(sm: Any) -> None:
    SecretsManagerClientRegistry(NAME, sm).add(client("seed"))
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def writer(prefix: str) -> None:
        registry = SecretsManagerClientRegistry(
            NAME, boto3.client("secretsmanager", region_name="us-east-1"), attempts=1000
        )
        start.wait()
        try:
            for i in range(8):
                registry.add(client(f"{prefix}{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = {c.client_id for c in SecretsManagerClientRegistry(NAME, sm).all()}
    assert ids == {"seed"} | {f"{p}{i}" for p in "abc" for i in range(8)}


def test_issuer_serves_a_client_stored_in_secrets_manager(sm: Any, clock: FakeClock) -> None:
    SecretsManagerClientRegistry(NAME, sm).add(client("svc", scopes=("orders:read",)))
    app = issuer(clock)  # the registry comes from settings.clients = aws-sm://...
    runtime: IssuerRuntime = app.state.s2s_issuer
    assert isinstance(runtime.registry, SecretsManagerClientRegistry)
    with TestClient(app, base_url=ISSUER) as http:
        response = http.post("/oauth2/token", data=FORM, headers={"Authorization": basic("svc", SECRET)})
        assert response.status_code == 200, response.text
        assert response.json()["scope"] == "orders:read"
        refused = http.post("/oauth2/token", data=FORM, headers={"Authorization": basic("other", SECRET)})
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_token_client_gets_tokens_for_a_client_in_secrets_manager(sm: Any, clock: FakeClock) -> None:
    SecretsManagerClientRegistry(NAME, sm).add(client("svc"))
    app = issuer(clock)
    app.state.s2s_issuer.keys.refresh()
    transport = httpx.ASGITransport(app=app)
    async with AsyncTokenClient(
        f"{ISSUER}/oauth2/token", client_id="svc", client_secret=SECRET, transport=transport
    ) as tokens:
        token = await tokens.get_token(AUDIENCE)
        assert token.token.count(".") == 2
        with pytest.raises(TokenRequestError) as info:
            await tokens.get_token("https://not-allowed.internal")
        assert info.value.error == "invalid_target"


def test_reload_picks_up_added_and_removed_clients(sm: Any, clock: FakeClock) -> None:
    cli_side = SecretsManagerClientRegistry(NAME, sm)
    cli_side.add(client("svc"))
    served = SecretsManagerClientRegistry(NAME, sm, clock=clock, reload_interval=30, background=False)
    with TestClient(issuer(clock, served), base_url=ISSUER) as http:

        def status(client_id: str) -> int:
            auth = {"Authorization": basic(client_id, SECRET)}
            return int(http.post("/oauth2/token", data=FORM, headers=auth).status_code)

        assert status("svc") == 200 and status("new") == 401
        cli_side.add(client("new"))
        cli_side.remove("svc")
        clock.advance(29)
        assert status("new") == 401 and status("svc") == 200  # not re-read yet
        clock.advance(2)
        assert status("new") == 200 and status("svc") == 401


def test_background_reload_does_not_block_and_keeps_last_good(
    sm: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    cli_side = SecretsManagerClientRegistry(NAME, sm)
    cli_side.add(client("svc"))
    served = SecretsManagerClientRegistry(NAME, sm, clock=clock, reload_interval=10)
    assert served.get("svc") is not None  # the first load is inline
    cli_side.add(client("new"))
    clock.advance(11)
    assert served.get("svc") is not None  # served from memory while the reload runs
    deadline = time.monotonic() + 30
    while served.get("new") is None:
        assert time.monotonic() < deadline, "the background reload never landed"
        time.sleep(0.01)
    # A broken document keeps the last good clients in force, and the error is logged by code only.
    # Written through the CAS: moto 5.2 leaves two AWSCURRENT labels after a plain put_secret_value
    # that follows an update_secret_version_stage, and keeps answering the older one.
    document = SecretsManagerDocument(NAME, SecretsManager(sm), noun="test", error=S2SError)
    document.write('{"format": "s2s.clients/1", "clients": [{"oops": ' + SECRET_HASH, document.read()[1])
    clock.advance(11)
    deadline = time.monotonic() + 30
    while "reload failed" not in caplog.text:
        assert served.get("svc") is not None  # each request past the interval may start a reload
        assert time.monotonic() < deadline, "the failed reload was not reported"
        time.sleep(0.01)
    assert served.get("svc") is not None and served.get("new") is not None
    assert SECRET_HASH not in caplog.text
    with pytest.raises(S2SError) as info:
        served.all()
    assert "not valid JSON" in str(info.value) and SECRET_HASH not in str(info.value)


def test_unreachable_registry_at_startup_is_503_not_500(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Down:
        calls = 0

        def get_secret_value(self, **kwargs: Any) -> Any:
            Down.calls += 1
            exc = Exception("denied")
            exc.response = {"Error": {"Code": "AccessDeniedException"}}  # type: ignore[attr-defined]
            raise exc

    registry = SecretsManagerClientRegistry(NAME, Down(), clock=clock)  # type: ignore[arg-type]
    with TestClient(issuer(clock, registry), base_url=ISSUER) as http:
        for _ in range(3):
            response = http.post("/oauth2/token", data=FORM, headers={"Authorization": basic("svc", SECRET)})
            assert response.status_code == 503 and response.json()["error"] == "temporarily_unavailable"
            assert response.headers["retry-after"]
    assert Down.calls == 1  # failures are not retried on every request
    assert "AccessDeniedException" in caplog.text
    with pytest.raises(RegistryError, match="AccessDeniedException"):
        registry.refresh()


def test_urls(sm: Any) -> None:
    registry = open_client_registry(f"{URL}?region=eu-west-1&reload=5")
    assert isinstance(registry, SecretsManagerClientRegistry)
    assert registry.url == URL and registry.secret_name == NAME
    assert registry.client.meta.region_name == "eu-west-1"
    for bad in ("aws-sm://", f"{URL}?reload=soon", f"{URL}?reload=0", "s3://bucket/clients.json"):
        with pytest.raises(ConfigError):
            open_client_registry(bad)


def test_cli_add_list_remove_against_secrets_manager(sm: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(main, [*args, "--registry", URL])
        return result.exit_code, result.stdout, result.stderr

    code, out, err = run("clients", "add", "orders", "--audience", AUDIENCE, "--scope", "x")
    assert code == 0, err
    secret = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("client_secret: "))
    doc = stored(sm)
    assert doc["clients"][0]["client_id"] == "orders" and secret not in json.dumps(doc)
    hash_value = doc["clients"][0]["secret_hash"]
    assert SecretsManagerClientRegistry(NAME, sm).get("orders") is not None

    code, out, _ = run("clients", "list")
    assert code == 0 and "orders" in out and secret not in out and hash_value not in out
    code, out, _ = run("clients", "list", "--json")
    assert json.loads(out)[0]["client_id"] == "orders" and "secret_hash" not in out
    code, _, err = run("clients", "add", "orders", "--audience", AUDIENCE)
    assert code == 1 and "already exists" in err
    assert run("clients", "remove", "orders")[0] == 0
    assert json.loads(run("clients", "list", "--json")[1]) == []
    assert secret not in caplog.text
