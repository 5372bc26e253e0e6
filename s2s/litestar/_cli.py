"""``litestar s2s …``: what an app's verifier trusts, and a test token from a local issuer.

:class:`~s2s.litestar.S2SAuthPlugin` adds this group to the Litestar CLI of any app that uses it::

    litestar --app myservice.app:app s2s config [--json]    # issuers, audiences, algorithms, ...
    litestar --app myservice.app:app s2s keys [--no-fetch] [--json]
    litestar --app myservice.app:app s2s token --client-id svc [--scope orders:read]

Everything printed is public (configuration, key ids and types) except the token that ``token``
was asked for. ``token`` is a developer tool: it sends the credential only to a loopback address
unless ``--allow-remote`` is given; its credentials and request are ``s2s token``'s
(:mod:`s2s.cli._token`). Errors are one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import click

from s2s.errors import S2SError
from s2s.http import is_loopback_host
from s2s.oauth import TOKEN_PATH
from s2s.verify import TokenVerifier, VerifierConfig

__all__ = ["config_rows", "is_loopback_url", "key_rows", "s2s_cli_group"]

# The curve each verifiable algorithm is bound to (RSA keys have none). The verifier loads a key
# only for the algorithm its kty/crv implies, so the algorithm determines the curve.
_CURVES = {"ES256": "P-256", "Ed25519": "Ed25519", "EdDSA": "Ed25519"}


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine (``localhost`` or a loopback IP address)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return is_loopback_host(host)


def _fail(message: str) -> click.exceptions.Exit:
    # One plain line on stderr (the rich-click box Litestar's CLI draws around a ClickException
    # wraps long messages) and exit status 1.
    click.echo(f"litestar s2s: error: {_one_line(message)}", err=True)
    return click.exceptions.Exit(1)


def _token_verifier(verifier: object) -> TokenVerifier:
    if not isinstance(verifier, TokenVerifier):
        raise _fail(
            f"this app's verifier is a {type(verifier).__name__}, not a TokenVerifier: "
            "its configuration is not known to the plugin"
        )
    return verifier


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def config_rows(verifier: object) -> list[dict[str, Any]]:
    """One entry per trusted issuer: the settings that decide which tokens pass (public data)."""
    rows = []
    for c in (source.config for source in _token_verifier(verifier).sources):
        rows.append(
            {
                "issuer": c.issuer,
                "audiences": list(c.audiences),
                "audience_claim": c.audience_claim,
                "algorithms": list(c.algorithms),
                # None: found by OpenID / RFC 8414 discovery from the issuer.
                "jwks_uri": c.jwks_uri,
                "leeway": c.leeway,
                "typ": list(c.token_types),
                "required_claims": list(c.required_claims),
                "allowed_tenants": list(c.allowed_tenants) if c.allowed_tenants is not None else None,
            }
        )
    return rows


def key_rows(verifier: object) -> list[dict[str, Any]]:
    """One entry per trusted issuer: the public keys it holds now (kid, kty, crv, alg)."""
    rows = []
    for source in _token_verifier(verifier).sources:
        info = source.describe()
        keys = [{**k, "crv": _CURVES.get(k["alg"])} for k in info["keys"]]
        rows.append(
            {
                "issuer": source.issuer,
                "jwks_uri": info["jwks_uri"],
                "fetched": info["age_seconds"] is not None,
                "age_seconds": info["age_seconds"],
                "keys": [{name: k[name] for name in ("kid", "kty", "crv", "alg")} for k in keys],
            }
        )
    return rows


async def _fetch(verifier: TokenVerifier) -> None:
    # The app's lifespan does not run in a CLI process: fetch once and close what start() opened.
    await verifier.start()
    await verifier.aclose()


def _print_config(rows: Sequence[dict[str, Any]]) -> None:
    for i, row in enumerate(rows):
        if i:
            click.echo()
        typ = ", ".join(t or "(no typ header)" for t in row["typ"])
        lines = [
            ("issuer", row["issuer"]),
            ("audiences", ", ".join(row["audiences"])),
            ("algorithms", ", ".join(row["algorithms"])),
            ("jwks_uri", row["jwks_uri"] or "(discovered from the issuer)"),
            ("leeway", f"{row['leeway']:g}s"),
            ("typ", typ),
        ]
        if row["audience_claim"] != "aud":
            lines.append(("audience claim", row["audience_claim"]))
        if row["allowed_tenants"] is not None:
            lines.append(("tenants", ", ".join(row["allowed_tenants"])))
        for name, value in lines:
            click.echo(f"{name:<15}{value}")


def _print_keys(rows: Sequence[dict[str, Any]]) -> None:
    for i, row in enumerate(rows):
        if i:
            click.echo()
        state = f"fetched {row['age_seconds']:g}s ago" if row["fetched"] else "not fetched"
        click.echo(f"{row['issuer']}  ({row['jwks_uri'] or 'discovery'}, {state})")
        if not row["keys"]:
            click.echo("  (no keys)")
            continue
        width = max(len(k["kid"]) for k in row["keys"])
        click.echo(f"  {'KID':<{width}}  {'KTY':<4} {'CRV':<8} ALG")
        for k in row["keys"]:
            click.echo(f"  {k['kid']:<{width}}  {k['kty']:<4} {k['crv'] or '-':<8} {k['alg']}")


def _choose(configs: Sequence[VerifierConfig], issuer: str | None, audience: str | None) -> tuple[str, str]:
    if issuer is None:
        if not configs:
            raise _fail("no --issuer given (or S2S_ISSUER) and the verifier trusts none")
        issuer = configs[0].issuer
    issuer = issuer.rstrip("/")
    if audience is None:
        same = [c for c in configs if c.issuer == issuer] or list(configs)
        if not same:
            raise _fail("no --audience given and the verifier has no audience")
        audience = same[0].audiences[0]
    return issuer, audience


def _describe(exc: S2SError) -> str:
    # A refusal's description already starts with its OAuth error code.
    if exc.description.startswith(f"{exc.error}:"):
        return exc.description
    return f"{exc.error}: {exc.description}"


def s2s_cli_group(verifier: object) -> click.Group:
    """The ``s2s`` command group for an app whose plugin verifies with ``verifier``."""
    # Here, not at import: the plugin imports this module in every app; the CLI only when it runs.
    from s2s.cli._token import credential_from_options, credential_options, fetch_token  # noqa: PLC0415

    @click.group(name="s2s")
    def group() -> None:
        """s2s: what this app's bearer-token verifier trusts, and test tokens."""

    @group.command(name="config")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    def config_command(as_json: bool) -> None:
        """Show the verifier's configuration: issuers, audiences, algorithms, JWKS, leeway, typ."""
        rows = config_rows(verifier)
        if as_json:
            click.echo(json.dumps(rows, indent=2))
        else:
            _print_config(rows)

    @group.command(name="keys")
    @click.option("--no-fetch", is_flag=True, help="Do not fetch the JWKS; show the keys already held.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    def keys_command(no_fetch: bool, as_json: bool) -> None:
        """Show the public keys the verifier trusts now, per issuer (fetches the JWKS first)."""
        known = _token_verifier(verifier)
        if not no_fetch:
            asyncio.run(_fetch(known))
        rows = key_rows(known)
        if as_json:
            click.echo(json.dumps(rows, indent=2))
        else:
            _print_keys(rows)
        failed = [row["issuer"] for row in rows if not row["fetched"]]
        if failed and not no_fetch:
            raise _fail(f"could not fetch the keys of {', '.join(failed)}")

    @group.command(name="token")
    @click.option(
        "--issuer",
        envvar="S2S_ISSUER",
        help="The issuer's URL. Env S2S_ISSUER; default: the first issuer the verifier trusts.",
    )
    @click.option("--token-endpoint", help="Default: <issuer>/oauth2/token.")
    @click.option("--client-id", envvar="S2S_CLIENT_ID", required=True, help="Env S2S_CLIENT_ID.")
    @credential_options
    @click.option("--audience", help="Default: the verifier's first audience for that issuer.")
    @click.option("--scope", "scopes", multiple=True, help="A scope to request (repeatable).")
    @click.option(
        "--allow-remote", is_flag=True, help="Allow an issuer that is not on this machine (loopback)."
    )
    @click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
    def token_command(  # noqa: PLR0917 - click passes each option as an argument
        issuer: str | None,
        token_endpoint: str | None,
        client_id: str,
        client_secret: str | None,
        private_key: str | None,
        assertion_file: str | None,
        audience: str | None,
        scopes: tuple[str, ...],
        allow_remote: bool,
        timeout: float,
    ) -> None:
        """Mint a test token with client credentials from a local issuer and print it."""
        try:
            credential = credential_from_options(client_secret, private_key, assertion_file)
        except S2SError as exc:
            raise _fail(_describe(exc)) from None
        configs = [s.config for s in verifier.sources] if isinstance(verifier, TokenVerifier) else []
        issuer, audience = _choose(configs, issuer, audience)
        endpoint = token_endpoint or f"{issuer}{TOKEN_PATH}"
        if not allow_remote and not is_loopback_url(endpoint):
            raise _fail(
                f"{endpoint} is not on this machine; this is a developer tool "
                "(pass --allow-remote to send the credential there anyway)"
            )
        try:
            token = fetch_token(
                endpoint,
                client_id=client_id,
                credential=credential,
                audience=audience,
                scopes=scopes,
                timeout=timeout,
                # --allow-remote is the explicit opt-in, plain http included (logged once).
                allow_insecure_http=allow_remote,
            )
        except S2SError as exc:
            # Token client errors never carry the credential or a token (s2s.client.errors).
            raise _fail(_describe(exc)) from None
        click.echo(token.token)

    return group
