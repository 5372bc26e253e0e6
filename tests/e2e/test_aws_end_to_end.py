"""Issue 4, end to end over HTTP: ``moto_server`` stands in for AWS Secrets Manager.

The CLI writes the keyset and the client registry into secrets, ``s2s serve`` reads both from
there (and a setting given as an ``aws-sm://`` reference), the token client reads its own secret
from Secrets Manager, and PyJWT verifies the token against the served JWKS. Every process reaches
the moto server only through the standard ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import json
import time
import uuid

import httpx
import jwt
import pytest

from s2s.client import TokenClient
from tests.e2e.aws import AwsDeployment, aws, moto  # noqa: F401 - fixtures
from tests.e2e.conftest import AUDIENCE, CLIENT_ID, SCOPE, running_issuer
from tests.support import free_port

__all__: list[str] = []

# Distinct from S2S_MAX_TOKEN_TTL (30) so the token's lifetime shows the reference was resolved.
TOKEN_TTL_FROM_SECRET = 17
# The registry reloads every second (?reload=1); the reload runs in a background thread started
# by a request, so allow a few more seconds on a loaded 2-core machine.
RELOAD_INTERVAL = 1.0
RELOAD_SLACK = 4.0


def _use_moto_here(monkeypatch: pytest.MonkeyPatch, deployment: AwsDeployment) -> None:
    """The test process itself (the token client) finds Secrets Manager the standard way too."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, deployment.env[name])
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def _token_response(endpoint: str, client_id: str, secret: str) -> httpx.Response:
    return httpx.post(
        endpoint,
        data={"grant_type": "client_credentials", "audience": AUDIENCE, "scope": SCOPE},
        auth=(client_id, secret),
        timeout=10,
        trust_env=False,
    )


def test_issuer_reads_keys_clients_and_settings_from_secrets_manager(
    aws: AwsDeployment,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = aws.cli_json("keys", "init")["keys"]
    (current,) = [k["kid"] for k in keys if k["state"] == "current"]
    added = aws.cli_json("clients", "add", CLIENT_ID, "--audience", AUDIENCE, "--scope", SCOPE)
    client_secret = added["client_secret"]
    sm = aws.boto("secretsmanager")
    # The keyset and the registry are secrets now, and neither holds the client's secret in clear.
    registry_doc = sm.get_secret_value(SecretId=f"{aws.prefix}/clients", VersionStage="AWSCURRENT")
    assert CLIENT_ID in registry_doc["SecretString"] and client_secret not in registry_doc["SecretString"]
    keyset_doc = sm.get_secret_value(SecretId=f"{aws.prefix}/keys", VersionStage="AWSCURRENT")
    assert current in keyset_doc["SecretString"]
    # What the caller deploys alongside: its own secret, and one issuer setting, in Secrets Manager.
    sm.create_secret(Name=f"{aws.prefix}/orders-client", SecretString=json.dumps({"secret": client_secret}))
    sm.create_secret(
        Name=f"{aws.prefix}/issuer", SecretString=json.dumps({"ttl": str(TOKEN_TTL_FROM_SECRET)})
    )
    env = {**aws.env, "S2S_TOKEN_TTL": f"aws-sm://{aws.prefix}/issuer#ttl"}
    _use_moto_here(monkeypatch, aws)

    with running_issuer(env, aws.root) as issuer:
        with TokenClient(
            issuer.token_endpoint,
            client_id=CLIENT_ID,
            client_secret=f"aws-sm://{aws.prefix}/orders-client#secret",
        ) as client:
            token = client.get_token(AUDIENCE, [SCOPE])
        keys_client = jwt.PyJWKClient(issuer.jwks_uri)
        header = jwt.get_unverified_header(token.token)
        assert header["kid"] == current and header["typ"] == "at+jwt", header
        claims = jwt.decode(
            token.token,
            keys_client.get_signing_key_from_jwt(token.token).key,
            algorithms=["ES256"],
            audience=AUDIENCE,
            issuer=issuer.url,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )
        assert claims["client_id"] == CLIENT_ID and claims["scope"] == SCOPE, claims
        assert claims["exp"] - claims["iat"] == TOKEN_TTL_FROM_SECRET, claims
        assert set(issuer.jwks_kids()) == {k["kid"] for k in keys if k["published"]}

        # A client registered after the start reaches the running issuer within the reload interval.
        late_id = f"late-{uuid.uuid4().hex[:6]}"
        refused = _token_response(issuer.token_endpoint, late_id, "not-registered-yet")
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client", refused.text
        late = aws.cli_json("clients", "add", late_id, "--audience", AUDIENCE, "--scope", SCOPE)
        written = time.monotonic()
        while (
            response := _token_response(issuer.token_endpoint, late_id, late["client_secret"])
        ).status_code != 200:
            assert response.status_code == 401, response.text
            assert time.monotonic() - written < RELOAD_INTERVAL + RELOAD_SLACK, (
                f"client {late_id} not accepted {RELOAD_INTERVAL + RELOAD_SLACK:.0f}s after `s2s clients add`"
            )
            time.sleep(0.1)
        print(f"\nclient added to Secrets Manager accepted {time.monotonic() - written:.2f}s later")
        late_claims = jwt.decode(
            response.json()["access_token"],
            keys_client.get_signing_key_from_jwt(response.json()["access_token"]).key,
            algorithms=["ES256"],
            audience=AUDIENCE,
            issuer=issuer.url,
        )
        assert late_claims["client_id"] == late_id

    log = issuer.log.read_text(errors="replace")
    assert "client registry" in log  # the registry was read from its secret ...
    for secret in (client_secret, late["client_secret"], token.token):
        assert secret not in log  # ... and no secret or token was logged


@pytest.mark.parametrize(
    "reference",
    ["{prefix}/issuer#missing", "{prefix}/no-such-secret"],
    ids=["missing-field", "missing-secret"],
)
def test_an_unreadable_reference_stops_startup_with_one_line_naming_it(
    aws: AwsDeployment,  # noqa: F811 - the fixture imported above
    reference: str,
) -> None:
    aws.cli_json("keys", "init")
    hidden = f"value-{uuid.uuid4().hex}"
    aws.boto("secretsmanager").create_secret(
        Name=f"{aws.prefix}/issuer", SecretString=json.dumps({"ttl": "17", "other": hidden})
    )
    ref = "aws-sm://" + reference.format(prefix=aws.prefix)
    result = aws.cli(
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
        timeout=60,
        extra_env={"S2S_TOKEN_TTL": ref},
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert ref in errors[0] and "S2S_TOKEN_TTL" in errors[0], errors[0]
    assert hidden not in result.stdout + result.stderr and "Traceback" not in result.stderr
    print(f"\n{errors[0]}")
