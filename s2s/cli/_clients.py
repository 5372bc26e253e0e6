"""``s2s clients add|list|remove|rotate-secret``: the issuer's client registry.

A new client's secret is printed once by ``add`` (and ``rotate-secret``) and stored only as a hash
(SHA-256: the secret is 256 random bits); no command ever prints a hash or asks for a secret. A
client registered with a federated credential (``--federated-*``, ``--kubernetes``, ``--github``,
``--spiffe``) gets no secret at all: it authenticates with the token its platform gives it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click

from s2s._env import parse_duration
from s2s.cli import emit, main, missing_location, table
from s2s.clock import system_clock
from s2s.errors import ConfigError
from s2s.issuer import (
    Client,
    FederatedCredential,
    FileClientRegistry,
    ManagedClientRegistry,
    github_credential,
    kubernetes_credential,
    new_client,
    open_client_registry,
    spiffe_credential,
)
from s2s.issuer._certs import certificates_from_pem, jwk_for_certificate
from s2s.issuer._clients import DEFAULT_SECRET_GRACE, MAX_SECRET_GRACE
from s2s.issuer._federation import GITHUB_ISSUER, KUBERNETES_ISSUER
from s2s.issuer._secret_hash import generate_secret, hash_secret
from s2s.keys._rotation import format_time
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


def _existing_registry(url: str) -> ManagedClientRegistry:
    """The registry at ``url``; a file registry that does not exist ends the command with where
    it looked and how to create one (reading or changing it must not create it)."""
    managed = _registry(url)
    if isinstance(managed, FileClientRegistry) and not managed.path.exists():
        missing_location(
            "client registry",
            managed.url,
            f"s2s clients add CLIENT_ID --audience AUDIENCE --registry {managed.url}",
            "--registry / S2S_CLIENTS",
        )
    return managed


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


def _claims(pairs: tuple[str, ...]) -> dict[str, str]:
    claims: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise ConfigError(f"--federated-claim takes NAME=VALUE (got {pair[:40]!r})")
        if name in claims:
            raise ConfigError(f"--federated-claim {name} is given twice")
        claims[name] = value
    return claims


def _federated(options: dict[str, Any]) -> tuple[FederatedCredential, ...]:
    """The one federated credential the options describe (none when no option names one)."""
    presets = [n for n in ("kubernetes", "github", "spiffe", "federated_issuer") if options[n] is not None]
    if len(presets) > 1:
        names = ", ".join("--" + n.replace("_", "-") for n in presets)
        raise ConfigError(f"give one federated credential per command ({names} given)")
    common: dict[str, Any] = {"audience": options["federated_audience"]}
    if options["federated_max_age"] is not None:
        common["max_age"] = options["federated_max_age"]
    claims = _claims(options["federated_claims"])
    keys = {n: options[f"federated_{n}"] for n in ("jwks_url", "jwks_file", "ca_file", "token_file")}
    keys = {n: str(v) for n, v in keys.items() if v is not None}
    spiffe_bundle = options["spiffe_bundle"]
    if not presets:
        prefixes = ("federated_", "spiffe_", "kubernetes_", "github_", "glob")
        if any(n.startswith(prefixes) and v not in (None, (), False) for n, v in options.items()):
            raise ConfigError(
                "--federated-* options need --federated-issuer, --kubernetes, --github or --spiffe"
            )
        return ()
    if spiffe_bundle is not None and presets != ["spiffe"]:
        raise ConfigError("--spiffe-bundle goes with --spiffe")
    if options["glob"] and presets != ["github"]:
        raise ConfigError("--federated-glob is only for --github")
    _github_ids(options, presets, claims)
    preset = presets[0]
    if preset == "kubernetes":
        issuer = options["kubernetes_issuer"] or KUBERNETES_ISSUER
        return (kubernetes_credential(options["kubernetes"], issuer=issuer, claims=claims, **keys, **common),)
    if preset == "github":
        issuer = options["github_issuer"] or GITHUB_ISSUER
        cred = github_credential(
            options["github"], issuer=issuer, glob=options["glob"], claims=claims, **keys, **common
        )
        return (cred,)
    if preset == "spiffe":
        if spiffe_bundle is None:
            raise ConfigError("--spiffe needs --spiffe-bundle URL|FILE (the trust domain's bundle)")
        if "jwks_url" in keys or "jwks_file" in keys:
            raise ConfigError("--spiffe takes its keys from --spiffe-bundle, not --federated-jwks-*")
        # A bundle endpoint may want its own CA (--federated-ca-file).
        return (spiffe_credential(options["spiffe"], spiffe_bundle, claims=claims, **keys, **common),)
    if options["federated_subject"] is None:
        raise ConfigError("--federated-issuer needs --federated-subject (the exact sub of the token)")
    credential = FederatedCredential(
        issuer=options["federated_issuer"],
        subject=options["federated_subject"],
        claims=claims,
        **keys,
        **common,
    )
    return (credential,)


_GITHUB_IDS = {"github_repository_id": "repository_id", "github_owner_id": "repository_owner_id"}


def _github_ids(options: dict[str, Any], presets: list[str], claims: dict[str, str]) -> None:
    """``--github-repository-id`` / ``--github-owner-id``: exact matches on the numeric id
    claims. A repository (or organisation) deleted and re-created under the same name by someone
    else keeps the name, never the id: this pins the credential against repo-jacking."""
    for option, claim in _GITHUB_IDS.items():
        value = options.get(option)
        if value is None:
            continue
        flag = "--" + option.replace("_", "-")
        if presets != ["github"]:
            raise ConfigError(f"{flag} goes with --github")
        if not value.isascii() or not value.isdigit() or len(value) > 20:
            raise ConfigError(f"{flag} takes the numeric id (see the repository_id claim, or the GitHub API)")
        if claim in claims:
            raise ConfigError(f"{flag} and --federated-claim {claim} both given")
        claims[claim] = value


def _federated_options(command: Any) -> Any:
    """The options of one federated credential, generic or by preset (applied bottom-up)."""
    path = click.Path(dir_okay=False, path_type=Path)
    options = [
        click.option("--federated-issuer", help="Trusted external issuer (the token's iss): no secret."),
        click.option("--federated-subject", help="The exact sub the external token must carry."),
        click.option(
            "--federated-audience",
            help="The aud the external token must carry (default: this issuer's identifier).",
        ),
        click.option(
            "--federated-claim",
            "federated_claims",
            multiple=True,
            help="NAME=VALUE the external token must also carry, exactly (repeatable).",
        ),
        click.option(
            "--federated-jwks-url", help="The external issuer's JWKS URL (default: OIDC discovery)."
        ),
        click.option("--federated-jwks-file", type=path, help="The external issuer's JWKS, from a file."),
        click.option(
            "--federated-ca-file", type=path, help="CA bundle for the JWKS URL (Kubernetes API server)."
        ),
        click.option(
            "--federated-token-file",
            type=path,
            help="Bearer token file for the JWKS URL (the Kubernetes API server's /openid/v1/jwks).",
        ),
        click.option(
            "--federated-max-age",
            type=click.FloatRange(min=1),
            help="Oldest external token accepted, seconds since its iat (default 3600).",
        ),
        click.option(
            "--federated-glob",
            "glob",
            is_flag=True,
            help="GitHub only: allow '*' (any run of characters but ':') in the subject and claims; "
            "--github ORG/REPO alone then means any branch or tag (ref:*), never pull requests "
            "or environments.",
        ),
        click.option("--kubernetes", metavar="NS/SA", help="Preset: a Kubernetes service account's token."),
        click.option(
            "--kubernetes-issuer",
            metavar="URL",
            help=f"The cluster's service-account issuer (default {KUBERNETES_ISSUER}).",
        ),
        click.option(
            "--github",
            metavar="ORG/REPO[:ref:refs/heads/X|:environment:E]",
            help="Preset: a GitHub Actions OIDC token of that repository and branch or environment.",
        ),
        click.option(
            "--github-repository-id",
            metavar="ID",
            help="With --github: the repository's numeric id, matched exactly (repository_id claim; "
            "recommended: a re-created repository of the same name has another id).",
        ),
        click.option(
            "--github-owner-id",
            metavar="ID",
            help="With --github: the owner's numeric id, matched exactly (repository_owner_id claim).",
        ),
        click.option(
            "--github-issuer",
            metavar="URL",
            help=f"GitHub's token issuer (default {GITHUB_ISSUER}; GitHub Enterprise Server differs).",
        ),
        click.option("--spiffe", metavar="SPIFFE_ID", help="Preset: a SPIFFE JWT-SVID of spiffe://TD/path."),
        click.option("--spiffe-bundle", metavar="URL|FILE", help="The trust domain's SPIFFE bundle."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


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
@_federated_options
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
    **federated_options: Any,
) -> None:
    """Register CLIENT_ID. Prints its new secret once (unless --jwks, --cert or a federated
    credential: then it has no secret at all)."""
    now = system_clock.now()
    federated = _federated(federated_options)
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
        federated=federated,
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
        for credential in client.federated:
            click.echo(
                f"federated: {credential.describe()} (audience {credential.audience or 'this issuer'})"
            )

    emit(data, as_json, human)


@clients_group.command("federate")
@click.argument("client_id")
@_federated_options
@click.option("--remove", is_flag=True, help="Remove that federated credential instead of adding it.")
@_registry_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def federate_command(
    client_id: str, remove: bool, registry: str, as_json: bool, **federated_options: Any
) -> None:
    """Add a federated credential to an existing CLIENT_ID (its secret or keys stay, e.g. while
    its callers move to their platform tokens), or --remove one."""
    credentials = _federated(federated_options)
    if not credentials:
        raise ConfigError("name the credential: --kubernetes, --github, --spiffe or --federated-issuer")
    (credential,) = credentials
    managed = _existing_registry(registry)
    changed: list[Client] = []

    def change(clients: dict[str, Client]) -> None:
        current = clients.get(client_id)
        if current is None:
            raise ConfigError(f"no client {client_id!r}")
        if remove:
            if credential not in current.federated:
                raise ConfigError(f"client {client_id} has no such federated credential")
            federated = tuple(f for f in current.federated if f != credential)
        else:
            if credential in current.federated:
                raise ConfigError(f"client {client_id} already has this federated credential")
            federated = (*current.federated, credential)
        # Client() refuses a client left with no credential at all.
        clients[client_id] = updated = dataclasses.replace(current, federated=federated)
        changed[:] = [updated]

    # Both registries (file, Secrets Manager) change under their lock / compare-and-swap.
    managed.update(change)
    cli_observer().client_changed("changed", client_id, "cli")
    client = changed[0]
    verb = "removed from" if remove else "added to"
    emit(
        client.to_public_dict(),
        as_json,
        lambda: click.echo(f"federated credential {credential.describe()} {verb} client {client_id}"),
    )


@clients_group.command("list")
@_registry_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_command(registry: str, as_json: bool) -> None:
    """List clients (never their secrets or hashes)."""
    managed = _existing_registry(registry)
    clients = managed.all()
    now = system_clock.now()
    rows = [
        (
            c.client_id,
            c.auth_method,
            " ".join(c.audiences),
            " ".join(c.scopes),
            " ".join(c.roles),
            "" if c.max_ttl is None else f"{c.max_ttl:g}",
            " ".join(f.describe() for f in c.federated),
            _secrets_cell(c, now),
        )
        for c in clients
    ]
    emit(
        [c.to_public_dict() for c in clients],
        as_json,
        lambda: table(
            rows, ("CLIENT_ID", "AUTH", "AUDIENCES", "SCOPES", "ROLES", "MAX_TTL", "FEDERATED", "SECRETS")
        ),
    )


def _secrets_cell(client: Client, now: float) -> str:
    """How many secrets it may present now, and until when the replaced ones last."""
    if not client.secrets:
        return "-"
    ends = sorted(s.not_after for s in client.previous_secrets if s.not_after is not None)
    live = [t for t in ends if t > now]
    cell = str(1 + len(live))
    if live:
        cell += f" (old until {format_time(live[-1])})"
    if len(live) < len(ends):
        cell += f" (+{len(ends) - len(live)} expired)"
    return cell


@clients_group.command("remove")
@click.argument("client_id")
@_registry_option
def remove_command(client_id: str, registry: str) -> None:
    """Remove CLIENT_ID: it can no longer obtain tokens (tokens already issued live on until exp)."""
    _registry(registry).remove(client_id)
    cli_observer().client_changed("removed", client_id, "cli")
    click.echo(f"client {client_id} removed")


class _Duration(click.ParamType[float]):
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a duration such as 0, 90s, 30m, 1h or 2d", param, ctx)


@clients_group.command("rotate-secret")
@click.argument("client_id")
@click.option(
    "--grace",
    type=_Duration(),
    default=f"{DEFAULT_SECRET_GRACE / 3600:g}h",
    show_default=True,
    help="How long the current secret stays valid beside the new one (e.g. 30m, 1h, 2d; at most "
    f"{MAX_SECRET_GRACE / 86400:g}d). 0 replaces it at once, and ends any earlier secret still in "
    "its grace.",
)
@_registry_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def rotate_secret_command(client_id: str, grace: float, registry: str, as_json: bool) -> None:
    """Give CLIENT_ID a new secret, printed once, without a gap: the current secret keeps working
    until the grace ends, then is refused (and pruned at the next change of the registry)."""
    if not 0 <= grace <= MAX_SECRET_GRACE:
        raise ConfigError(f"--grace must be between 0 and {MAX_SECRET_GRACE / 86400:g}d")
    now = system_clock.now()
    secret = generate_secret()
    secret_hash = hash_secret(secret)
    managed = _existing_registry(registry)
    rotated: list[Client] = []

    def change(clients: dict[str, Client]) -> None:
        # Under the registry's lock (file) or compare-and-swap (Secrets Manager): a retry reapplies it.
        current = clients.get(client_id)
        if current is None:
            raise ConfigError(f"no client {client_id!r}")
        clients[client_id] = current.with_new_secret(secret_hash, now=now, grace=grace)
        rotated[:] = [clients[client_id]]

    managed.update(change)
    client = rotated[0]
    cli_observer().client_changed("secret_rotated", client.client_id, "cli")
    data = client.to_public_dict()
    data["client_secret"] = secret

    def human() -> None:
        click.echo(f"client {client.client_id}: new secret")
        click.echo(f"client_secret: {secret}")
        click.echo("Store this secret now: it is shown only once; the registry keeps only a hash.")
        if grace > 0:
            click.echo(
                f"The previous secret stays valid until {format_time(now + grace)}: "
                "give the new one to every instance of the client before then."
            )
        else:
            click.echo(
                "The previous secret (and any still in its grace) is refused by each issuer "
                "as soon as it reloads the registry."
            )

    emit(data, as_json, human)
