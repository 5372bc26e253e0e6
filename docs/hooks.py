"""MkDocs hook: generates the configuration, CLI and API references from the code at build time.

A page asks for a reference with a marker line: ``<!-- s2s:settings -->``, ``<!-- s2s:cli -->`` or
``<!-- s2s:api -->``. The API reference is every public module (no ``_`` in its dotted path) with
the names of its ``__all__`` and the first line of their docstrings: ``__all__`` is its one source.
The settings tables come from calling each ``from_env`` with a mapping that records every variable
it reads, so a variable added, renamed or removed in the code changes the page; every variable
needs a one-line description below, and a description of a variable the code no longer reads fails
the build (``mkdocs build --strict`` and ``tests/docs``).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import click

import s2s
from s2s.aws import AwsSettings
from s2s.cli import HELP_WIDTH, main
from s2s.client import TokenClientSettings
from s2s.entra import EntraConfig
from s2s.issuer import IssuerSettings
from s2s.litestar import S2SAuthPlugin
from s2s.observe import ObserveSettings
from s2s.verify import VerifierConfig
from services.resource.app import ResourceSettings

__all__ = [
    "SECTIONS",
    "Section",
    "api_markdown",
    "cli_markdown",
    "on_page_markdown",
    "public_modules",
    "read_vars",
    "settings_markdown",
]

SETTINGS_MARKER = "<!-- s2s:settings -->"
CLI_MARKER = "<!-- s2s:cli -->"
API_MARKER = "<!-- s2s:api -->"


class _Recorder(Mapping[str, str]):
    """An environment that remembers every variable looked up in it."""

    def __init__(self, given: Mapping[str, str]) -> None:
        self.given = dict(given)
        self.read: list[str] = []

    def __getitem__(self, key: str) -> str:
        if key not in self.read:
            self.read.append(key)
        return self.given[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.given)

    def __len__(self) -> int:
        return len(self.given)


@dataclass(frozen=True)
class Section:
    title: str
    target: str  # the Python name a reader looks up
    prefix: str
    build: Callable[[Mapping[str, str]], Any]
    # The least environment from_env accepts: these variables are the required ones.
    required: Mapping[str, str]
    # Variable suffix -> attribute path, where the name alone does not say it.
    attributes: Mapping[str, str]
    descriptions: Mapping[str, str]
    intro: str = ""
    # Groups of variables of which exactly one must be given (``EnvReader.one_of``): each member's
    # default cell says so instead of "required" (the example above had to pick one of them).
    alternatives: tuple[tuple[str, ...], ...] = ()


def _issuer(env: Mapping[str, str]) -> Any:
    return IssuerSettings.from_env("S2S_", env)


def _client(env: Mapping[str, str]) -> Any:
    return TokenClientSettings.from_env("S2S_", env)


def _verifier(env: Mapping[str, str]) -> Any:
    return VerifierConfig.from_env("S2S_VERIFIER_", env)


def _observe(env: Mapping[str, str]) -> Any:
    return ObserveSettings.from_env("S2S_", env)


def _entra(env: Mapping[str, str]) -> Any:
    return EntraConfig.from_env("S2S_ENTRA_", env)


def _aws(env: Mapping[str, str]) -> Any:
    return AwsSettings.from_env("S2S_AWS_", env)


def _resource(env: Mapping[str, str]) -> Any:
    return ResourceSettings.from_env("S2S_RESOURCE_", env)


SECTIONS: tuple[Section, ...] = (
    Section(
        title="Issuer (`s2s serve`, `services/issuer`)",
        target="s2s.issuer.IssuerSettings.from_env (timing: s2s.keys.RotationPolicy.from_env)",
        prefix="S2S_",
        build=_issuer,
        required={},
        attributes={
            name: f"rotation.{name.lower()}"
            for name in (
                "ALG",
                "ROTATE_EVERY",
                "PUBLISH_LEAD",
                "MAX_TOKEN_TTL",
                "LEEWAY",
                "JWKS_MAX_AGE",
                "REFETCH_COOLDOWN",
                "POLL_INTERVAL",
                "RETENTION",
            )
        },
        intro="Any of these may be an `aws-sm://NAME#field` reference, resolved at startup, except "
        "`S2S_KEYSTORE` and `S2S_CLIENTS`, where `aws-sm://NAME` is the store itself. Durations are "
        "seconds, or a number with a unit (`30s`, `5m`, `1h`, `7d`).",
        descriptions={
            "ISSUER": "The issuer URL: the `iss` of every token and the base of the metadata URLs. "
            "Same value on every replica.",
            "KEYSTORE": "Where the keyset lives: `file://DIR` or `aws-sm://SECRET_NAME`.",
            "CLIENTS": "The client registry: `file://PATH` or `aws-sm://SECRET_NAME`.",
            "TOKEN_TTL": "Lifetime of issued tokens (a client's own `--ttl` may shorten it). "
            "Must be at most `S2S_MAX_TOKEN_TTL`.",
            "ALG": "Algorithm of new keys (`ES256`, `RS256`, `PS256`, `Ed25519`); unset: keep the "
            "keyset's algorithm (a new keyset gets ES256).",
            "ROTATE_EVERY": "How long a key signs before the schedule promotes the next one (0: never).",
            "PUBLISH_LEAD": "How long a `next` key is published before it may sign. At least "
            "`POLL_INTERVAL + JWKS_MAX_AGE + REFETCH_COOLDOWN`.",
            "MAX_TOKEN_TTL": "The longest token lifetime; a demoted key stays published this long (plus "
            "poll interval and leeway).",
            "LEEWAY": "Clock skew the verifiers allow; added to how long a demoted key stays published.",
            "JWKS_MAX_AGE": "`Cache-Control: max-age` of the JWKS response.",
            "REFETCH_COOLDOWN": "The verifiers' refetch cooldown, which `PUBLISH_LEAD` must cover.",
            "POLL_INTERVAL": "How often each replica reloads the keyset from the store.",
            "RETENTION": "How long retired and revoked keys are kept for audit before `s2s keys prune`.",
            "RUN_ROTATION": "Run the rotation schedule inside this replica (`true`/`false`).",
            "CREATE_KEYS": "Let the issuer app create a keyset at startup if the store has none. "
            "(`s2s serve` itself creates first keys in an empty store before it starts the app.)",
            "RATE_LIMIT": "Tokens per second issued per client (token bucket), charged only after the "
            "client authenticated; failed attempts have their own budgets (docs/security.md).",
            "RATE_BURST": "Burst size of that bucket.",
            "MAX_BODY_BYTES": "Largest token request body accepted (256 to 1048576).",
            "BODY_TIMEOUT": "Seconds to receive a token request's whole body; slower gets 408 (<= 300).",
            "ASSERTION_MAX_LIFETIME": "Longest `private_key_jwt` assertion lifetime accepted (<= 3600).",
            "HOST": "Address `s2s serve` binds to.",
            "PORT": "Port `s2s serve` binds to.",
            "STATE": "Replay and rate-limit state: `sqlite://PATH` (default: `state.sqlite3` beside the "
            "key store, shared by the issuer processes of one host), `dynamodb://TABLE[?region=R]` "
            "(several hosts) or `memory` (tests only).",
            "STATE_FAILURE_MODE": "While that store is unavailable: `closed` (default: token requests "
            "503 + `Retry-After`, `/ready` 503) or `local` (this replica's memory stands in, `/ready` "
            "200 listing `state store degraded`; replay protection is per replica until the store "
            "answers, see docs/deployment-aws.md).",
            "SIGNER": "Where new private keys live: `local` (in the keyset) or `aws-kms`; unset: follow "
            "the keyset.",
            "KMS_DELETION_WINDOW_DAYS": "Days before a pruned KMS key is deleted (7 to 30).",
            "SSL_CERTFILE": "PEM certificate (chain) for HTTPS served by `s2s serve` itself "
            "(with `S2S_SSL_KEYFILE`); the issuer URL then defaults to `https://HOST:PORT`.",
            "SSL_KEYFILE": "PEM private key (unencrypted) of that certificate.",
            "CLAIM_ALIASES": "Also emit `scp` (list), `cid` and `azp` (Okta/Entra conventions) in every "
            "token; a client's `--claim-aliases/--no-claim-aliases` overrides it.",
            "FEDERATION_TOKEN_DIRS": "Directories (comma-separated, absolute) where a federated "
            "credential's `token_file` may be; default `/var/run/secrets/kubernetes.io/serviceaccount`. "
            "See [Run without secrets](../run-without-secrets.md).",
        },
    ),
    Section(
        title="Token client (`TokenClient.from_env`, `AsyncTokenClient.from_env`)",
        target="s2s.client.TokenClientSettings.from_env",
        prefix="S2S_",
        build=_client,
        required={"S2S_CLIENT_ID": "billing", "S2S_CLIENT_SECRET": "x", "S2S_ISSUER": "https://i.example"},
        attributes={
            "TOKEN_TIMEOUT": "timeout",
            "CLIENT_PRIVATE_KEY": "private_key",
            "CLIENT_ASSERTION_FILE": "assertion_file",
        },
        alternatives=(
            ("TOKEN_ENDPOINT", "ISSUER"),
            ("CLIENT_SECRET", "CLIENT_PRIVATE_KEY", "CLIENT_ASSERTION_FILE"),
        ),
        intro="Give `S2S_TOKEN_ENDPOINT` or `S2S_ISSUER`, and one of `S2S_CLIENT_SECRET` / "
        "`S2S_CLIENT_PRIVATE_KEY` / `S2S_CLIENT_ASSERTION_FILE`. Secrets may be `aws-sm://` references.",
        descriptions={
            "TOKEN_ENDPOINT": "The token endpoint URL. Wins over `S2S_ISSUER`.",
            "TOKEN_TIMEOUT": "HTTP timeout of a token request, seconds.",
            "CLIENT_ID": "This service's client id at the issuer.",
            "ISSUER": "The issuer URL; the token endpoint is found by discovery.",
            "CLIENT_SECRET": "The client secret (`client_secret_basic`).",
            "CLIENT_PRIVATE_KEY": "A private key (path, PEM or JWK text) for `private_key_jwt`.",
            "CLIENT_ASSERTION_FILE": "A file holding a token the platform gives this workload (a "
            "Kubernetes projected service-account token, a SPIFFE JWT-SVID): sent as the client "
            "assertion, re-read when it changes, never sent once expired. No secret at all: "
            "see [Fetch tokens](../fetch-tokens.md#without-a-secret).",
            "ALLOW_INSECURE_HTTP": "`true`: send credentials over plain http to a non-loopback "
            "host (a sidecar that adds TLS); logged once. Default `false`: https or loopback only.",
        },
    ),
    Section(
        title="Verifier (`VerifierConfig.from_env`)",
        target="s2s.verify.VerifierConfig.from_env",
        prefix="S2S_VERIFIER_",
        build=_verifier,
        required={"S2S_VERIFIER_ISSUER": "https://i.example", "S2S_VERIFIER_AUDIENCE": "orders-api"},
        attributes={"AUDIENCE": "audiences"},
        intro="Lists are comma or space separated. Without `S2S_VERIFIER_JWKS_URI` the keys are found by "
        "discovery from the issuer URL.",
        descriptions={
            "ISSUER": "The trusted issuer (`iss`), exactly.",
            "AUDIENCE": "Accepted audiences (`aud`): this API's identifier(s).",
            "LEEWAY": "Clock skew allowed on `exp`/`nbf`/`iat`, seconds (at most 300).",
            "MAX_TOKEN_AGE": "Refuse tokens whose `iat` is older than this (unset: no limit).",
            "MAX_LIFETIME": "Refuse tokens whose `exp - iat` is longer than this (unset: no limit).",
            "JWKS_TTL": "How long fetched keys are cached when the response has no `Cache-Control`.",
            "REFETCH_COOLDOWN": "Least time between two refetches triggered by unknown `kid`s.",
            "MAX_STALENESS": "How long the last good keys keep serving while the JWKS cannot be fetched.",
            "HTTP_TIMEOUT": "Timeout of a JWKS or discovery fetch.",
            "ALGORITHMS": "Accepted signing algorithms (asymmetric only: `none` and `HS*` are refused).",
            "REQUIRED_CLAIMS": "Claims every token must carry.",
            "ALLOWED_TENANTS": "Accepted `tid` values (Entra ID multi-tenant).",
            "TOKEN_TYPES": "Accepted `typ` header values; `none` means no `typ` header.",
            "JWKS_URI": "The JWKS URL, skipping discovery.",
        },
    ),
    Section(
        title="Entra ID (`EntraConfig.from_env`)",
        target="s2s.entra.EntraConfig.from_env",
        prefix="S2S_ENTRA_",
        build=_entra,
        required={"S2S_ENTRA_TENANT_ID": "t", "S2S_ENTRA_CLIENT_ID": "c", "S2S_ENTRA_CLIENT_SECRET": "s"},
        attributes={},
        alternatives=(("CLIENT_SECRET", "CERTIFICATE_KEY", "PFX", "FEDERATED_TOKEN_FILE"),),
        intro="Exactly one credential: `CLIENT_SECRET`, `CERTIFICATE_KEY` (with `CERTIFICATE_THUMBPRINT`), "
        "`PFX` or `FEDERATED_TOKEN_FILE`. With none of them set, the variables the Azure "
        "workload-identity webhook injects are used: `AZURE_FEDERATED_TOKEN_FILE` with `AZURE_TENANT_ID`, "
        "`AZURE_CLIENT_ID` and `AZURE_AUTHORITY_HOST` (an `S2S_ENTRA_` variable that is set still wins).",
        descriptions={
            "TENANT_ID": "The directory (tenant) id.",
            "CLIENT_ID": "This API's application (client) id.",
            "CLIENT_SECRET": "A client secret.",
            "CERTIFICATE_KEY": "A certificate's private key (PEM).",
            "CERTIFICATE_THUMBPRINT": "That certificate's thumbprint.",
            "CERTIFICATE": "The public certificate (PEM) that goes with `CERTIFICATE_KEY`.",
            "PFX": "A PKCS#12 file instead of key and certificate.",
            "PFX_PASSWORD": "Its password.",
            "FEDERATED_TOKEN_FILE": "Workload identity federation (no secret): a file holding the "
            "token Entra ID trusts through a federated credential (e.g. a Kubernetes projected "
            "service-account token), sent by MSAL as the client assertion and re-read when it changes.",
            "AUTHORITY_HOST": "The login host (national clouds).",
            "INSTANCE_DISCOVERY": "MSAL instance discovery (`false` for custom authorities); "
            "unset: MSAL's default.",
            "MAX_CONCURRENCY": "Most MSAL calls in flight at once.",
            "OBO_REFRESH_MARGIN": "Seconds before expiry at which a cached on-behalf-of token is renewed.",
            "TOKEN_CACHE_PATH": "File for MSAL's token cache (unset: memory).",
        },
    ),
    Section(
        title="AWS calls (every AWS adapter: key store, client registry, secrets, state, KMS)",
        target="s2s.aws.AwsSettings.from_env",
        prefix="S2S_AWS_",
        build=_aws,
        required={},
        attributes={},
        intro="Per call to AWS. Tight on purpose: when AWS hangs, a token request gets `503` with "
        "`Retry-After` within `CONNECT_TIMEOUT + READ_TIMEOUT` (the issuer's worker-pool deadline), "
        "not after a minute, and repeated failures open a circuit breaker that fails fast. "
        "Credentials, region and endpoint come from the standard AWS environment (`AWS_PROFILE`, "
        "`AWS_REGION`, `AWS_ENDPOINT_URL`...).",
        descriptions={
            "CONNECT_TIMEOUT": "Seconds to open a connection to AWS, per attempt.",
            "READ_TIMEOUT": "Seconds to wait for AWS's answer, per attempt.",
            "MAX_ATTEMPTS": "Attempts per call, the first included (botocore `standard` retries: "
            "throttling and transient errors, with backoff; 1 to 10).",
            "BREAKER_THRESHOLD": "Calls in a row that find AWS unreachable (timeouts, refused "
            "connections, 5xx codes) before that service's circuit breaker opens (1 to 100).",
            "BREAKER_COOLDOWN": "Seconds an open circuit breaker fails calls at once before it lets one "
            "trial call through; the trial's success closes it.",
        },
    ),
    Section(
        title="Observability (metrics, traces, logs; see the Operate page)",
        target="s2s.observe.ObserveSettings.from_env",
        prefix="S2S_",
        build=_observe,
        required={},
        attributes={},
        descriptions={
            "METRICS": "Serve the issuer's Prometheus metrics (`/metrics`).",
            "METRICS_PORT": "Serve them on this port instead of the main one (with `--workers`, "
            "`s2s serve` serves it for every worker).",
            "METRICS_HOST": "The address the metrics port binds; one that is not loopback needs "
            "`S2S_METRICS_TOKEN` (else the issuer does not start).",
            "METRICS_TOKEN": "Bearer token the metrics ask for (16+ characters; may be an "
            "`aws-sm://` reference). Without it `/metrics` on the main port answers loopback "
            "callers only (404 to others): it lists the client ids.",
            "OTEL": "OpenTelemetry spans (needs `pip install 's2s[otel]'`; exporters are set up by "
            "OpenTelemetry's own configuration).",
            "LOG_FORMAT": "`text`, or `json`: every s2s log line one JSON object.",
            "AUDIT_LOG": "Also append the audit events (JSON lines) to this file, created 0600.",
        },
    ),
    Section(
        title="Example resource service (`services/resource`)",
        target="services.resource.app.ResourceSettings.from_env (plus the verifier's S2S_VERIFIER_*)",
        prefix="S2S_RESOURCE_",
        build=_resource,
        required={},
        attributes={},
        descriptions={
            "REALM": "The `realm` of its `WWW-Authenticate` challenges.",
            "PUBLIC_DOCS": "Serve the OpenAPI schema without a token.",
            "GRAPH_SCOPES": "Scopes that `GET /me/graph` asks Entra ID for on behalf of the caller "
            "(space- or comma-separated).",
            "GRAPH_BASE_URL": "Microsoft Graph's base URL (national clouds, a test double).",
            "TOKEN_URL": "The issuer's token endpoint: OpenAPI documents a client-credentials flow "
            "with it (Swagger UI's Authorize).",
        },
    ),
)


def read_vars(section: Section) -> tuple[list[str], Any]:
    """The variables ``from_env`` reads, in the order it reads them, and the object it builds."""
    env = _Recorder(section.required)
    built = section.build(env)
    return env.read, built


def _attribute(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _type(obj: Any, path: str) -> str:
    *parents, name = path.split(".")
    owner = obj
    for part in parents:
        owner = getattr(owner, part)
    for f in dataclasses.fields(owner):
        if f.name == name:
            return str(f.type)
    raise LookupError(f"{type(owner).__name__} has no field {name}")


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        return ", ".join(value) if value else "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_markdown() -> str:
    out: list[str] = []
    for section in SECTIONS:
        names, built = read_vars(section)
        suffixes = [n.removeprefix(section.prefix) for n in names]
        undocumented = [n for n, s in zip(names, suffixes, strict=True) if s not in section.descriptions]
        stale = sorted(set(section.descriptions) - set(suffixes))
        if undocumented or stale:
            raise RuntimeError(
                f"{section.title}: undocumented variables {undocumented}, descriptions of variables the "
                f"code does not read {stale} (docs/hooks.py)"
            )
        out += [f"## {section.title}", "", f"Read by `{section.target}`.", ""]
        if section.intro:
            out += [section.intro, ""]
        out += ["| variable | type | default | meaning |", "|---|---|---|---|"]
        for name, suffix in zip(names, suffixes, strict=True):
            path = section.attributes.get(suffix, suffix.lower())
            # "X | None" as "X or None": a pipe cannot be escaped inside a code span in a table.
            kind = _type(built, path).replace(" | ", " or ")
            group = next((g for g in section.alternatives if suffix in g), None)
            if group is not None:
                others = " / ".join(f"`{section.prefix}{o}`" for o in group if o != suffix)
                default = f"**one of** this or {others}"
            elif name in section.required:
                default = "**required**"
            else:
                default = f"`{_show(_attribute(built, path))}`"
            out.append(f"| `{name}` | `{kind}` | {_cell(default)} | {_cell(section.descriptions[suffix])} |")
        out.append("")
    return "\n".join(out)


def _commands(group: click.Command, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
    yield path, group
    if isinstance(group, click.Group):
        ctx = click.Context(group, info_name=path[-1])
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _commands(sub, [*path, name])


def _command_markdown(root: click.Command, root_name: str) -> list[str]:
    out: list[str] = []
    for path, command in _commands(root, [root_name]):
        parent: click.Context | None = None
        for name in path[:-1]:
            parent = click.Context(root if parent is None else parent.command, info_name=name, parent=parent)
        # Exactly what `--help` prints in an 80-column terminal: the same click call, the same width.
        ctx = click.Context(command, info_name=path[-1], parent=parent, terminal_width=HELP_WIDTH)
        level = "#" * min(len(path) + 1, 4)
        out += [f"{level} `{' '.join(path)}`", "", "```text", command.get_help(ctx), "```", ""]
        # Options whose --help does not show their variable (the litestar commands) list it here.
        envs = [
            f"`{' / '.join(p.opts)}`: `{p.envvar}`"
            for p in command.params
            if isinstance(p, click.Option) and isinstance(p.envvar, str) and not p.show_envvar
        ]
        if envs:
            out += ["Environment: " + "; ".join(envs) + ".", ""]
    return out


def cli_markdown() -> str:
    out = _command_markdown(main, "s2s")
    out += [
        "## `litestar` commands added by `S2SAuthPlugin`",
        "",
        "An app that uses the plugin gets these in Litestar's own CLI (`litestar --app module:app ...`).",
        "",
    ]
    group = click.Group("litestar")
    S2SAuthPlugin(VerifierConfig.for_s2s("https://issuer.example", "api")).on_cli_init(group)
    for name in group.list_commands(click.Context(group, info_name="litestar")):
        # Shown as `litestar s2s ...`: the headings of a sub-tree of Litestar's CLI.
        out += [
            line.replace("`s2s", "`litestar s2s", 1) for line in _command_markdown(group.commands[name], name)
        ]
    return "\n".join(out)


def public_modules() -> list[str]:
    """Every module of s2s a user may import by design: no path component starts with ``_``."""
    names = ["s2s"]
    for info in pkgutil.walk_packages(s2s.__path__, "s2s."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _first_paragraph(doc: str) -> str:
    """A docstring's first paragraph as one Markdown line (reST roles and literals as code spans)."""
    text = inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ").strip()
    text = re.sub(
        r":[a-z]+:`~?([\w.]*?)([\w]+)`", lambda m: f"`{m[2] if '~' in m[0] else m[1] + m[2]}`", text
    )
    text = re.sub(r"``(.+?)``", r"`\1`", text)
    return text.removesuffix("::") + (":" if text.endswith("::") else "")


def _summary(obj: Any) -> str:
    """The first line of an object's own docstring ("" for values, and for a dataclass without one,
    whose generated ``__doc__`` is only its signature)."""
    if not (inspect.isclass(obj) or inspect.isroutine(obj)):
        return ""
    doc = obj.__doc__ or ""
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""
    return _first_paragraph(doc)


def _kind(obj: Any) -> str:
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isroutine(obj):
        return "function"
    return "value"


def api_markdown() -> str:
    out: list[str] = []
    for name in public_modules():
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            raise RuntimeError(f"public module {name} has no __all__ (docs/hooks.py)")
        doc = _first_paragraph(module.__doc__ or "")
        out += [f"## `{name}`", "", doc, "", "| name | kind | summary |", "|---|---|---|"]
        for exported_name in sorted(exported, key=lambda n: (n.lower(), n)):
            obj = getattr(module, exported_name)
            home = (
                getattr(obj, "__module__", None) if inspect.isclass(obj) or inspect.isroutine(obj) else None
            )
            summary = _summary(obj)
            # A name re-exported from another public package says where it lives.
            if home is not None and not home.startswith(name) and "._" not in home and home != name:
                summary = f"(from `{home}`) {summary}".strip()
            out.append(f"| `{exported_name}` | {_kind(obj)} | {_cell(summary)} |")
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_markdown())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_markdown())
    if API_MARKER in markdown:
        markdown = markdown.replace(API_MARKER, api_markdown())
    return markdown
