"""Entra credentials given as aws-sm:// references, resolved through SecretsManagerSource (moto)."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from s2s.entra import EntraApp, EntraConfig
from s2s.errors import ConfigError
from s2s.secrets import SecretNotFound, SecretsManagerSource
from tests.entra.conftest import CLIENT_SECRET, ClientCert, FakeEntra, LocalCA, unverified_header

pytestmark = pytest.mark.anyio


def _env(entra: FakeEntra, **extra: str) -> dict[str, str]:
    return {
        "S2S_ENTRA_TENANT_ID": entra.tenant,
        "S2S_ENTRA_CLIENT_ID": entra.client_id,
        "S2S_ENTRA_AUTHORITY_HOST": entra.host,
        **extra,
    }


async def test_client_secret_from_secrets_manager(
    sm: Any, entra: FakeEntra, test_ca: LocalCA, caplog: pytest.LogCaptureFixture
) -> None:
    sm.create_secret(Name="entra/app", SecretString=json.dumps({"client_secret": CLIENT_SECRET}))
    caplog.set_level(logging.DEBUG)  # after the test's own setup call, which botocore logs
    config = EntraConfig.from_env(
        environ=_env(entra, S2S_ENTRA_CLIENT_SECRET="aws-sm://entra/app#client_secret")
    )
    app = EntraApp.from_config(config, secrets=SecretsManagerSource(sm), http_client=test_ca.session())
    assert app.authority == entra.authority
    await app.for_client("api://downstream/.default")
    assert entra.token_requests[0].form["client_secret"] == CLIENT_SECRET
    assert (
        CLIENT_SECRET not in caplog.text
        and CLIENT_SECRET not in repr(app)
        and CLIENT_SECRET not in repr(config)
    )


async def test_pfx_from_a_binary_secret(
    sm: Any, entra: FakeEntra, test_ca: LocalCA, client_cert: ClientCert
) -> None:
    sm.create_secret(Name="entra/pfx", SecretBinary=client_cert.pfx)
    sm.create_secret(Name="entra/pfx-pass", SecretString=client_cert.pfx_password)
    config = EntraConfig.from_env(
        environ=_env(
            entra, S2S_ENTRA_PFX="aws-sm://entra/pfx", S2S_ENTRA_PFX_PASSWORD="aws-sm://entra/pfx-pass"
        )
    )
    app = EntraApp.from_config(config, secrets=SecretsManagerSource(sm), http_client=test_ca.session())
    await app.for_client("api://downstream/.default")
    assert "x5t" in unverified_header(entra.token_requests[0].form["client_assertion"])


async def test_pfx_as_base64_text(entra: FakeEntra, test_ca: LocalCA, client_cert: ClientCert) -> None:
    config = EntraConfig.from_env(
        environ=_env(
            entra,
            S2S_ENTRA_PFX=base64.b64encode(client_cert.pfx).decode(),
            S2S_ENTRA_PFX_PASSWORD=client_cert.pfx_password,
        )
    )
    app = EntraApp.from_config(config, http_client=test_ca.session())
    await app.for_client("api://downstream/.default")
    assert len(entra.token_requests) == 1


def test_certificate_key_from_secrets_manager(sm: Any, entra: FakeEntra, client_cert: ClientCert) -> None:
    sm.create_secret(Name="entra/key", SecretString=client_cert.key_pem)
    config = EntraConfig.from_env(
        environ=_env(
            entra,
            S2S_ENTRA_CERTIFICATE_KEY="aws-sm://entra/key",
            S2S_ENTRA_CERTIFICATE_THUMBPRINT=client_cert.thumbprint_sha1,
        )
    )
    resolved = config.credential().resolved(SecretsManagerSource(sm))
    assert resolved.private_key == client_cert.key_pem
    assert client_cert.key_pem not in repr(resolved)


def test_missing_secret_stops_from_env_naming_the_variable_and_the_reference(
    sm: Any, entra: FakeEntra
) -> None:
    with pytest.raises(SecretNotFound) as info:
        EntraConfig.from_env(environ=_env(entra, S2S_ENTRA_CLIENT_SECRET="aws-sm://entra/none#client_secret"))
    assert str(info.value) == "S2S_ENTRA_CLIENT_SECRET=aws-sm://entra/none#client_secret: no such secret"


def test_from_env_resolves_references_in_every_setting(sm: Any, entra: FakeEntra) -> None:
    # Issue 13: EntraConfig.from_env took the literal "aws-sm://..." text as the value.
    sm.create_secret(
        Name="entra/app", SecretString=json.dumps({"tenant": entra.tenant, "client_secret": CLIENT_SECRET})
    )
    config = EntraConfig.from_env(
        environ=_env(
            entra,
            S2S_ENTRA_TENANT_ID="aws-sm://entra/app#tenant",
            S2S_ENTRA_CLIENT_SECRET="aws-sm://entra/app#client_secret",
        ),
        secrets=SecretsManagerSource(sm),
    )
    assert config.tenant_id == entra.tenant and config.client_secret == CLIENT_SECRET
    assert CLIENT_SECRET not in repr(config)


def test_missing_and_conflicting_settings_are_named_in_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        EntraConfig.from_env(environ={"S2S_ENTRA_CLIENT_SECRET": "s", "S2S_ENTRA_PFX": "cGZ4"})
    assert str(info.value) == (
        "missing settings: S2S_ENTRA_TENANT_ID, S2S_ENTRA_CLIENT_ID; "
        "S2S_ENTRA_CLIENT_SECRET and S2S_ENTRA_PFX are alternatives: give exactly one credential"
    )
