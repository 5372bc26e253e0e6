"""``s2s token``: fetch an access token from a running issuer and print it."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

import click
import httpx

from s2s.cli import fail, main
from s2s.errors import ConfigError
from s2s.http import secure_url

__all__ = ["token_command"]


@main.command("token")
@click.option("--issuer", envvar="S2S_ISSUER", default="http://127.0.0.1:8000", show_default=True)
@click.option("--client-id", envvar="S2S_CLIENT_ID", required=True, help="Env S2S_CLIENT_ID.")
@click.option(
    "--client-secret",
    envvar="S2S_CLIENT_SECRET",
    required=True,
    help="Env S2S_CLIENT_SECRET (prefer it: arguments show up in process lists).",
)
@click.option("--audience", help="The audience (resource) the token is for.")
@click.option("--scope", "scopes", multiple=True, help="Requested scope (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole token response as JSON.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
@click.option(
    "--allow-insecure-http",
    is_flag=True,
    envvar="S2S_ALLOW_INSECURE_HTTP",
    help="Send the secret over plain http to a non-loopback issuer (a sidecar that adds TLS). "
    "Env S2S_ALLOW_INSECURE_HTTP.",
)
def token_command(  # noqa: PLR0917 - click passes each option as an argument
    issuer: str,
    client_id: str,
    client_secret: str,
    audience: str | None,
    scopes: tuple[str, ...],
    as_json: bool,
    timeout: float,
    allow_insecure_http: bool,
) -> None:
    """Fetch a token with client credentials (client_secret_basic) and print it."""
    url = issuer.rstrip("/") + "/oauth2/token"
    try:
        secure_url(url, "--issuer", allow_insecure_http=allow_insecure_http)
    except ConfigError as exc:
        fail(exc.description)
        return
    form = {"grant_type": "client_credentials"}
    if audience:
        form["audience"] = audience
    if scopes:
        form["scope"] = " ".join(scopes)
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
    auth = httpx.BasicAuth(quote_plus(client_id), quote_plus(client_secret))
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as http:
            response = http.post(url, data=form, auth=auth, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {type(exc).__name__}")
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        fail(f"{url} answered HTTP {response.status_code} without a JSON body")
        return
    if response.status_code != 200 or not isinstance(body.get("access_token"), str):
        error = str(body.get("error", "error"))[:64]
        description = str(body.get("error_description", f"HTTP {response.status_code}"))[:300]
        fail(f"{error}: {description}")
        return
    click.echo(json.dumps(body, indent=2) if as_json else body["access_token"])
