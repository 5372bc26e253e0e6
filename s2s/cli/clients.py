"""``s2s clients add|list|remove``: the issuer's client registry.

A new client's secret is printed once by ``add`` and stored only as a hash (SHA-256: the secret
is 256 random bits); no command ever prints a hash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from s2s.cli import emit, main, missing_location, table
from s2s.clock import system_clock
from s2s.errors import ConfigError
from s2s.issuer import FileClientRegistry, ManagedClientRegistry, new_client, open_client_registry
from s2s.issuer._certs import certificates_from_pem, jwk_for_certificate
from s2s.observe import cli_observer

__all__ = ["DEFAULT_REGISTRY", "clients_group"]

DEFAULT_REGISTRY = "file://keys/clients.json"

_registry_option = click.option(
    "--registry",
    envvar="S2S_CLIENTS",
    default=DEFAULT_REGISTRY,
    show_default=True,
    help="Client registry: file://PATH or aws-sm://SECRET_NAME (env S2S_CLIENTS).",
)


def _registry(url: str) -> ManagedClientRegistry:
    return open_client_registry(url)


def _read_jwks(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise ConfigError(f"{path}: not a readable JSON file") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a JWKS (or a JWK) must be a JSON object")
    return doc


@main.group("clients")
def clients_group() -> None:
    """Manage the clients allowed to obtain tokens."""


def _read_certificate(path: Path, now: float) -> dict[str, Any]:
    """The JWK (with the certificate in ``x5c``) of the first certificate in a PEM file; an
    expired or not yet valid certificate is refused now rather than at its first token request."""
    try:
        pem = path.read_bytes()
    except OSError:
        raise ConfigError(f"{path}: not a readable file") from None
    if b"PRIVATE KEY" in pem:
        raise ConfigError(f"{path}: holds a private key; give the certificate only")
    try:
        cert = certificates_from_pem(pem)[0]
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.description}") from None
    if not cert.not_before <= now <= cert.not_after:
        raise ConfigError(f"{path}: the certificate is not valid now (expired or not yet valid)")
    return jwk_for_certificate(cert)


def _client_keys(jwks_file: Path | None, cert_files: tuple[Path, ...], now: float) -> dict[str, Any] | None:
    if jwks_file is None and not cert_files:
        return None
    keys: list[Any] = []
    if jwks_file is not None:
        doc = _read_jwks(jwks_file)
        keys.extend(doc["keys"] if isinstance(doc.get("keys"), list) else [doc])
    keys.extend(_read_certificate(path, now) for path in cert_files)
    return {"keys": keys}


def _features(names: tuple[str, ...], as_json: str | None) -> Any:
    if as_json is None:
        return names
    if names:
        raise ConfigError("give --feature or --features-json, not both")
    try:
        value = json.loads(as_json)
    except ValueError:
        raise ConfigError("--features-json is not JSON") from None
    if not isinstance(value, dict | list):
        raise ConfigError("--features-json must be a JSON list or object")
    return value


@clients_group.command("add")
@click.argument("client_id")
@click.option("--audience", "audiences", multiple=True, required=True, help="Allowed audience (repeatable).")
@click.option("--scope", "scopes", multiple=True, help="Allowed scope (repeatable).")
@click.option("--role", "roles", multiple=True, help="Role claim for its tokens (repeatable).")
@click.option("--permission", "permissions", multiple=True, help="Permission claim (repeatable).")
@click.option("--feature", "features", multiple=True, help="Feature claim (repeatable).")
@click.option(
    "--features-json",
    help='Features as JSON instead: a list of names or an object such as \'{"beta": true, "limit": 5}\'.',
)
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Public JWKS (or JWK) file: the client authenticates with private_key_jwt, no secret.",
)
@click.option(
    "--cert",
    "cert_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM certificate of the client (repeatable): private_key_jwt with that certificate's key, "
    "named by kid or by thumbprint (x5t#S256, as MSAL sends it).",
)
@click.option("--ttl", type=click.FloatRange(min=1), help="Longest token lifetime for this client, seconds.")
@click.option(
    "--claim-aliases/--no-claim-aliases",
    default=None,
    help="Also emit scp, cid and azp (Okta/Entra conventions) in its tokens; unset: S2S_CLAIM_ALIASES.",
)
@_registry_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def add_command(  # noqa: PLR0917 - click passes each option as an argument
    client_id: str,
    audiences: tuple[str, ...],
    scopes: tuple[str, ...],
    roles: tuple[str, ...],
    permissions: tuple[str, ...],
    features: tuple[str, ...],
    features_json: str | None,
    jwks_file: Path | None,
    cert_files: tuple[Path, ...],
    ttl: float | None,
    claim_aliases: bool | None,
    registry: str,
    as_json: bool,
) -> None:
    """Register CLIENT_ID. Prints its new secret once (unless --jwks or --cert)."""
    now = system_clock.now()
    client, secret = new_client(
        client_id,
        audiences=audiences,
        scopes=scopes,
        roles=roles,
        permissions=permissions,
        features=_features(features, features_json),
        max_ttl=ttl,
        claim_aliases=claim_aliases,
        jwks=_client_keys(jwks_file, cert_files, now),
        now=now,
    )
    _registry(registry).add(client)
    cli_observer().client_changed("registered", client.client_id, "cli")
    data = client.to_public_dict()
    if secret is not None:
        data["client_secret"] = secret

    def human() -> None:
        click.echo(f"client {client.client_id} added ({client.auth_method})")
        if secret is not None:
            click.echo(f"client_secret: {secret}")
            click.echo("Store this secret now: it is shown only once; the registry keeps only a hash.")

    emit(data, as_json, human)


@clients_group.command("list")
@_registry_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_command(registry: str, as_json: bool) -> None:
    """List clients (never their secrets or hashes)."""
    managed = _registry(registry)
    if isinstance(managed, FileClientRegistry) and not managed.path.exists():
        missing_location(
            "client registry",
            managed.url,
            f"s2s clients add CLIENT_ID --audience AUDIENCE --registry {managed.url}",
            "--registry / S2S_CLIENTS",
        )
    clients = managed.all()
    rows = [
        (
            c.client_id,
            c.auth_method,
            " ".join(c.audiences),
            " ".join(c.scopes),
            " ".join(c.roles),
            "" if c.max_ttl is None else f"{c.max_ttl:g}",
        )
        for c in clients
    ]
    emit(
        [c.to_public_dict() for c in clients],
        as_json,
        lambda: table(rows, ("CLIENT_ID", "AUTH", "AUDIENCES", "SCOPES", "ROLES", "MAX_TTL")),
    )


@clients_group.command("remove")
@click.argument("client_id")
@_registry_option
def remove_command(client_id: str, registry: str) -> None:
    """Remove CLIENT_ID: it can no longer obtain tokens (tokens already issued live on until exp)."""
    _registry(registry).remove(client_id)
    cli_observer().client_changed("removed", client_id, "cli")
    click.echo(f"client {client_id} removed")
