"""``s2s serve`` speaks HTTPS itself (``--ssl-certfile/--ssl-keyfile`` or ``S2S_SSL_*``); the issuer
URL then defaults to https, so discovery, tokens and the JWKS all name https URLs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.interop.tls_issuer import IssuerDir, serve_tls
from tests.support_tls import LocalCA

__all__: list[str] = []

AUDIENCE = "https://orders.tls.test"


@pytest.mark.parametrize("via_env", [False, True], ids=["options", "env"])
def test_serve_over_tls(interop_ca: LocalCA, tmp_path: Path, via_env: bool) -> None:
    issuer_dir = IssuerDir.create(tmp_path)
    secret = issuer_dir.add_client("tls-svc", "--audience", AUDIENCE)["client_secret"]
    with serve_tls(issuer_dir, interop_ca, via_env=via_env) as issuer, issuer.http() as http:
        for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
            meta = http.get(issuer.url + path).json()
            assert meta["issuer"] == issuer.url and issuer.url.startswith("https://"), meta
            assert meta["token_endpoint"] == issuer.token_endpoint and meta["jwks_uri"].startswith("https://")
        response = http.post(
            issuer.token_endpoint, data={"grant_type": "client_credentials"}, auth=("tls-svc", secret)
        )
        assert response.status_code == 200, response.text
        # Plain HTTP on the same port gets no token.
        with pytest.raises(httpx.HTTPError):
            httpx.post(
                issuer.token_endpoint.replace("https://", "http://"),
                data={"grant_type": "client_credentials"},
                auth=("tls-svc", secret),
                trust_env=False,
                timeout=5,
            ).raise_for_status()
    assert secret not in issuer.log_text()


def test_a_certificate_without_its_key_is_one_error_line(interop_ca: LocalCA, tmp_path: Path) -> None:
    issuer_dir = IssuerDir.create(tmp_path)
    result = issuer_dir.cli("serve", "--port", "1", extra_env={"S2S_SSL_CERTFILE": str(interop_ca.cert_path)})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "s2s: error: invalid_configuration: S2S_SSL_CERTFILE, S2S_SSL_KEYFILE: "
        "ssl_certfile and ssl_keyfile go together: set both for HTTPS, or neither"
    ], result.stderr


def test_a_key_that_does_not_match_is_one_error_line(interop_ca: LocalCA, tmp_path: Path) -> None:
    issuer_dir = IssuerDir.create(tmp_path)
    result = issuer_dir.cli(
        "serve", "--ssl-certfile", str(interop_ca.cert_path), "--ssl-keyfile", str(interop_ca.ca_path)
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("s2s: error: invalid_configuration: TLS certificate"), (
        result.stderr
    )
    assert "BEGIN" not in result.stderr and "Traceback" not in result.stderr
