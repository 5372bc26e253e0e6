"""``s2s token``: fetch an access token from a running issuer and print it.

The request is :class:`~s2s.client.TokenClient`'s, not a copy of it: the same credentials
(a client secret, a private key, or a platform token file re-read at each use), the same transport
rules (https, or plain http to loopback unless ``--allow-insecure-http``), and the same typed
errors. ``litestar s2s token`` (:mod:`s2s.litestar._cli`) uses the same options and
:func:`fetch_token`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click
import httpx

from s2s.cli import fail, main
from s2s.client import (
    AccessToken,
    ClientAssertion,
    ClientCredential,
    ClientSecret,
    FileAssertionSource,
    PrivateKeyJWT,
    RetryPolicy,
    TokenClient,
)
from s2s.client._credentials import load_credential
from s2s.errors import S2SError
from s2s.oauth import TOKEN_PATH

__all__ = ["credential_from_options", "credential_options", "fetch_token", "token_command"]

_F = TypeVar("_F", bound=Callable[..., Any])

_CREDENTIAL_OPTIONS = ("--client-secret", "--private-key", "--assertion-file")


def credential_options(command: _F) -> _F:
    """The three ways a client proves who it is; :func:`credential_from_options` wants one. Each
    names its variable in ``--help`` (``litestar s2s token`` too, which ``s2s``'s own rule misses)."""
    command = click.option(
        "--assertion-file",
        envvar="S2S_CLIENT_ASSERTION_FILE",
        show_envvar=True,
        type=click.Path(dir_okay=False),
        help="No secret: a file holding a token the platform gives this workload (a Kubernetes "
        "projected service-account token, a SPIFFE JWT-SVID), sent as the client assertion.",
    )(command)
    command = click.option(
        "--private-key",
        envvar="S2S_CLIENT_PRIVATE_KEY",
        show_envvar=True,
        help="private_key_jwt: a private key file (PEM or JWK), or an aws-sm:// reference.",
    )(command)
    return click.option(
        "--client-secret",
        envvar="S2S_CLIENT_SECRET",
        show_envvar=True,
        help="client_secret_basic (prefer the variable: arguments show up in process lists).",
    )(command)


def credential_from_options(
    client_secret: str | None, private_key: str | None, assertion_file: str | None
) -> ClientCredential:
    """Exactly one credential; a usage error names the alternatives (never a value)."""
    given = [
        name
        for name, value in zip(_CREDENTIAL_OPTIONS, (client_secret, private_key, assertion_file), strict=True)
        if value
    ]
    if len(given) != 1:
        which = "none was given" if not given else f"{' and '.join(given)} were given"
        raise click.UsageError(f"give exactly one of {', '.join(_CREDENTIAL_OPTIONS)} ({which})")
    return load_credential(
        client_secret=client_secret or None,
        private_key=private_key or None,
        client_assertion=FileAssertionSource(assertion_file) if assertion_file else None,
    )


def fetch_token(
    token_endpoint: str,
    *,
    client_id: str,
    credential: ClientCredential,
    audience: str | None,
    scopes: Iterable[str] = (),
    timeout: float = 10.0,
    allow_insecure_http: bool = False,
) -> AccessToken:
    """One token, one try within ``timeout`` (a command-line tool: the operator runs it again)."""
    # trust_env=False: no proxy from the environment gets to see the credential.
    with httpx.Client(trust_env=False, timeout=timeout) as http:
        client = TokenClient(
            token_endpoint,
            client_id=client_id,
            client_assertion=credential if isinstance(credential, ClientAssertion) else None,
            client_secret=credential if isinstance(credential, ClientSecret) else None,
            private_key=credential if isinstance(credential, PrivateKeyJWT) else None,
            http_client=http,
            retry=RetryPolicy(attempts=1, deadline=timeout, timeout=timeout),
            allow_insecure_http=allow_insecure_http,
        )
        return client.get_token(audience, scopes)


def token_json(token: AccessToken) -> dict[str, Any]:
    """The RFC 6749 §5.1 view of a token, for ``--json``."""
    return {
        "access_token": token.token,
        "token_type": "Bearer",
        "expires_in": max(0, round(token.expires_at - token.issued_at)) if token.issued_at else None,
        "scope": " ".join(token.scopes),
        "audience": token.audience,
    }


@main.command("token")
@click.option("--issuer", envvar="S2S_ISSUER", default="http://127.0.0.1:8000", show_default=True)
@click.option("--client-id", envvar="S2S_CLIENT_ID", required=True, help="This service's client id.")
@credential_options
@click.option(
    "--audience", help="The audience (resource) the token is for. Default: the client's only audience."
)
@click.option("--scope", "scopes", multiple=True, help="Requested scope (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the token response as JSON.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
@click.option(
    "--allow-insecure-http",
    is_flag=True,
    envvar="S2S_ALLOW_INSECURE_HTTP",
    help="Send the credential over plain http to a non-loopback issuer (a sidecar that adds TLS).",
)
def token_command(  # noqa: PLR0917 - click passes each option as an argument
    issuer: str,
    client_id: str,
    client_secret: str | None,
    private_key: str | None,
    assertion_file: str | None,
    audience: str | None,
    scopes: tuple[str, ...],
    as_json: bool,
    timeout: float,
    allow_insecure_http: bool,
) -> None:
    """Fetch a token with client credentials and print it.

    One credential: a client secret, a private key, or (no secret at all) a platform token file.
    """
    credential = credential_from_options(client_secret, private_key, assertion_file)
    try:
        token = fetch_token(
            issuer.rstrip("/") + TOKEN_PATH,
            client_id=client_id,
            credential=credential,
            audience=audience,
            scopes=scopes,
            timeout=timeout,
            allow_insecure_http=allow_insecure_http,
        )
    except S2SError as exc:
        # Token client errors name the problem, never the secret, the assertion or a token.
        fail(exc.description)
        return
    click.echo(json.dumps(token_json(token), indent=2) if as_json else token.token)
