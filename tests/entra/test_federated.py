"""Entra workload identity federation: real MSAL sends the projected token file as its client
assertion (the client-assertion callback), to the local HTTPS authority with the test CA."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from s2s.client import AssertionExpired, ClientAssertion, FileAssertionSource
from s2s.entra import EntraApp, EntraConfig, federated_token_file
from s2s.errors import ConfigError
from tests.client.assertion_support import ProjectedVolume, platform_token
from tests.entra.conftest import FakeEntra, unverified_claims
from tests.support_tls import LocalCA

pytestmark = pytest.mark.anyio

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
API = "api://downstream/.default"
MakeApp = Callable[..., EntraApp]


def azure_token(lifetime: float = 3600) -> str:
    # What the webhook's projected volume holds: audience api://AzureADTokenExchange.
    return platform_token(time.time() + lifetime, aud="api://AzureADTokenExchange")


async def test_msal_sends_the_current_token_file_as_its_client_assertion(
    entra: FakeEntra, make_app: MakeApp, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    volume = ProjectedVolume(tmp_path / "azure-identity-token")
    first = azure_token()
    volume.write(first)
    # Under MSAL's 5-minute threshold: every call is a new token request, as after an expiry.
    entra.expires_in = 120
    app = make_app(ClientAssertion(FileAssertionSource(volume.path)))
    token = await app.for_client(API)
    [post] = entra.token_requests
    assert post.form["client_assertion"] == first
    assert post.form["client_assertion_type"] == JWT_BEARER
    assert post.form["client_id"] == entra.client_id and "client_secret" not in post.form
    assert unverified_claims(token.token)["aud"] == "api://downstream"

    second = azure_token()
    volume.write(second)  # the kubelet rotated it
    await app.for_client(API)
    assert entra.token_requests[1].form["client_assertion"] == second
    assert first not in caplog.text and second not in caplog.text


async def test_an_expired_token_file_is_the_typed_error_and_nothing_is_sent(
    entra: FakeEntra, make_app: MakeApp, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    stale = platform_token(time.time() - 60)
    path.write_text(stale)
    app = make_app(federated_token_file(path))
    with pytest.raises(AssertionExpired) as info:
        await app.for_client(API)
    assert str(path) in str(info.value) and "expired at" in str(info.value)
    assert stale.split(".")[1] not in str(info.value)
    assert entra.token_requests == []


async def test_an_error_that_echoes_the_assertion_is_scrubbed(
    entra: FakeEntra, make_app: MakeApp, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    token = azure_token()
    path.write_text(token)
    entra.script.append(
        entra.error(401, "invalid_client", f"AADSTS700213: No matching federated identity for {token}")
    )
    app = make_app(federated_token_file(path))
    with pytest.raises(Exception) as info:
        await app.for_client(API)
    assert "AADSTS700213" in str(info.value) and token not in str(info.value)


def webhook_env(entra: FakeEntra, path: Path) -> dict[str, str]:
    """The variables the Azure workload-identity webhook injects into a pod."""
    return {
        "AZURE_CLIENT_ID": entra.client_id,
        "AZURE_TENANT_ID": entra.tenant,
        "AZURE_FEDERATED_TOKEN_FILE": str(path),
        "AZURE_AUTHORITY_HOST": entra.host + "/",
    }


async def test_config_from_the_workload_identity_webhook_variables(
    entra: FakeEntra, test_ca: LocalCA, tmp_path: Path
) -> None:
    path = tmp_path / "azure-identity-token"
    token = azure_token()
    path.write_text(token)
    config = EntraConfig.from_env(environ=webhook_env(entra, path))
    assert (config.tenant_id, config.client_id) == (entra.tenant, entra.client_id)
    assert config.federated_token_file == str(path) and config.client_secret is None
    assert config.authority_host == entra.host + "/"
    session = test_ca.session()
    app = EntraApp.from_config(config, http_client=session)
    try:
        assert app.authority == entra.authority
        await app.for_client(API)
    finally:
        app.close()
        session.close()
    assert entra.token_requests[0].form["client_assertion"] == token


def test_our_own_settings_win_and_a_secret_ignores_the_webhook(entra: FakeEntra, tmp_path: Path) -> None:
    path = tmp_path / "token"
    webhook = webhook_env(entra, path)
    # Our own credential configured: the webhook's variables are not used at all.
    ours = {"S2S_ENTRA_TENANT_ID": "t", "S2S_ENTRA_CLIENT_ID": "c", "S2S_ENTRA_CLIENT_SECRET": "s3cr3t-X"}
    config = EntraConfig.from_env(environ={**webhook, **ours})
    assert (config.tenant_id, config.client_id, config.federated_token_file) == ("t", "c", None)
    assert config.authority_host == "https://login.microsoftonline.com"
    # Federated through the webhook, with our own client id taking precedence.
    config = EntraConfig.from_env(environ={**webhook, "S2S_ENTRA_CLIENT_ID": "c2"})
    assert (config.tenant_id, config.client_id) == (entra.tenant, "c2")
    assert config.federated_token_file == str(path)
    # Our own token file is our own credential: then our own ids are needed too.
    mine = tmp_path / "mine"
    with pytest.raises(ConfigError, match=r"missing settings: S2S_ENTRA_TENANT_ID, S2S_ENTRA_CLIENT_ID$"):
        EntraConfig.from_env(environ={**webhook, "S2S_ENTRA_FEDERATED_TOKEN_FILE": str(mine)})
    config = EntraConfig.from_env(
        environ={**ours, "S2S_ENTRA_CLIENT_SECRET": "", "S2S_ENTRA_FEDERATED_TOKEN_FILE": str(mine)}
    )
    credential = config.credential()
    assert isinstance(credential, ClientAssertion) and str(mine) in repr(credential)


def test_exactly_one_credential_names_the_federated_file_too(tmp_path: Path) -> None:
    base = {"S2S_ENTRA_TENANT_ID": "t", "S2S_ENTRA_CLIENT_ID": "c"}
    with pytest.raises(ConfigError) as info:
        EntraConfig.from_env(environ=base)
    assert str(info.value) == (
        "missing setting: S2S_ENTRA_CLIENT_SECRET or S2S_ENTRA_CERTIFICATE_KEY or S2S_ENTRA_PFX "
        "or S2S_ENTRA_FEDERATED_TOKEN_FILE"
    )
    both = {**base, "S2S_ENTRA_CLIENT_SECRET": "s3cr3t-X", "S2S_ENTRA_FEDERATED_TOKEN_FILE": "/t"}
    with pytest.raises(ConfigError) as info:
        EntraConfig.from_env(environ=both)
    assert str(info.value) == (
        "S2S_ENTRA_CLIENT_SECRET and S2S_ENTRA_FEDERATED_TOKEN_FILE are alternatives: "
        "give exactly one credential"
    )
    with pytest.raises(ConfigError, match="or a federated token file"):
        EntraConfig("t", "c", client_secret="s", federated_token_file="/t").credential()
