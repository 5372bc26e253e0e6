"""``s2s serve``: run the issuer on this machine with uvicorn.

The key store gets its first keys on first start; ``--demo`` also registers a demo client and
prints how to fetch a token with it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import ssl
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from s2s._files import check_private_file
from s2s.cli import fail, main
from s2s.clock import system_clock
from s2s.errors import ConfigError
from s2s.issuer import FileClientRegistry, IssuerSettings, create_first_keys, new_client, open_client_registry
from s2s.issuer._state import parse_state_url

__all__ = [
    "DEMO_AUDIENCE",
    "DEMO_CLIENT_ID",
    "DEMO_SCOPES",
    "prepare",
    "serve_command",
    "state_group",
    "state_init_command",
]

DEMO_CLIENT_ID = "demo"
DEMO_AUDIENCE = "https://api.example.internal"
DEMO_SCOPES = ("orders:read", "orders:write")


def prepare(settings: IssuerSettings, *, demo: bool) -> str | None:
    """Create keys if the store is empty and, with ``demo``, the demo client.

    Returns the demo client's new secret when it was just created (``None`` otherwise).
    """
    store, keyset = create_first_keys(settings)
    current = keyset.current
    click.echo(f"key store {store.url}: signing key {current.kid if current else '(none)'}")
    registry = open_client_registry(settings.clients)
    if isinstance(registry, FileClientRegistry):
        # The issuer keeps the last good clients when the file cannot be read: at startup a
        # file others can read must stop it with one line instead.
        check_private_file(registry.path)
    if not demo:
        return None
    if registry.get(DEMO_CLIENT_ID) is not None:
        return None
    client, secret = new_client(
        DEMO_CLIENT_ID, audiences=[DEMO_AUDIENCE], scopes=DEMO_SCOPES, now=system_clock.now()
    )
    registry.add(client)
    return secret


def _s2s_command() -> str:
    """How the reader runs this ``s2s``: relative to the working directory when it lives below it
    (``.venv/bin/s2s`` from the repository root), ``s2s`` when that is the one on PATH."""
    exe = Path(os.path.abspath(sys.argv[0]))  # not resolve(): a symlinked .venv stays .venv
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        on_path = shutil.which("s2s")
        return "s2s" if on_path and Path(on_path).resolve() == exe.resolve() else str(exe)


def _demo_instructions(settings: IssuerSettings, secret: str | None) -> None:
    endpoint = settings.token_endpoint
    s2s = _s2s_command()
    if secret is None:
        click.echo(
            f"demo client {DEMO_CLIENT_ID!r} exists already; its secret was shown when it was created. "
            f"To get a new one: {s2s} clients remove {DEMO_CLIENT_ID} --registry {settings.clients} "
            "and start `s2s serve --demo` again."
        )
        return
    click.echo(f"demo client: client_id={DEMO_CLIENT_ID} client_secret={secret}")
    click.echo("(shown once: the registry keeps only a hash)")
    # The secret travels in the environment: command-line arguments show up in process lists.
    click.echo("fetch a token (from this directory):")
    click.echo(f"  export S2S_CLIENT_SECRET={shlex.quote(secret)}")
    click.echo(
        f"  {s2s} token --issuer {shlex.quote(settings.issuer)} --client-id {DEMO_CLIENT_ID} "
        f"--audience {shlex.quote(DEMO_AUDIENCE)}"
    )
    click.echo("or with curl (printf is a shell builtin: the secret stays out of process lists):")
    click.echo(
        f'  printf \'user = "{DEMO_CLIENT_ID}:%s"\\n\' "$S2S_CLIENT_SECRET" | curl -s -K - '
        f"-d grant_type=client_credentials -d audience={shlex.quote(DEMO_AUDIENCE)} {shlex.quote(endpoint)}"
    )


def _bind(host: str, port: int) -> socket.socket:
    """Listen before saying anything: a taken port ends with one line, before any "ready" output.

    uvicorn serves on this very socket (:func:`_serve`), so nothing can take the port in between.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}): check --host")
        raise  # fail() exits; this tells the type checker
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another port with --port")
    sock.set_inheritable(True)
    return sock


def _serve(app: Any, sock: socket.socket, *, workers: int = 1, **options: Any) -> None:
    """``uvicorn.run`` on the socket :func:`_bind` holds (so nothing takes the port in between).

    The socket object itself goes to uvicorn, not its file descriptor: uvicorn rebuilds a socket
    from ``fd=`` as AF_UNIX, and asyncio then leaves Nagle on for every connection (a 40 ms
    delayed-ACK stall per keep-alive response). With ``workers`` > 1, ``app`` is an import string.
    """
    import uvicorn  # noqa: PLC0415 - lazy: the server stack loads only for `serve`
    from uvicorn.supervisors import Multiprocess  # noqa: PLC0415 - same

    config = uvicorn.Config(app, workers=workers, **options)
    server = uvicorn.Server(config)
    try:
        if workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    if workers == 1 and not server.started:
        sys.exit(3)  # what uvicorn.run exits with when the app fails to start


def _run_workers(settings: IssuerSettings, sock: socket.socket, workers: int, **options: Any) -> None:
    """N processes on the socket bound here: each worker builds the app from the environment (so
    the URL this command worked out goes there) and loads the same key store, client registry and
    issuer state; keys were created above, once, before any worker started."""
    os.environ.update(S2S_ISSUER=settings.issuer, S2S_HOST=settings.host, S2S_PORT=str(settings.port))
    with _multiprocess_metrics():
        _serve(
            "s2s.litestar.issuer:create_issuer_app",
            sock,
            workers=workers,
            factory=True,
            **options,
        )


@contextlib.contextmanager
def _multiprocess_metrics() -> Iterator[None]:
    """prometheus_client's multi-process mode for the workers (docs/operate.md): each writes its
    samples under ``PROMETHEUS_MULTIPROC_DIR`` (a fresh directory made here unless set; emptied
    either way, since old samples would be counted again), and a scrape of any worker adds them
    up. With ``S2S_METRICS_PORT`` this process serves that port, for all the workers."""
    from s2s.observe import ObserveSettings  # noqa: PLC0415 - lazy, like the server stack
    from s2s.observe.prometheus import MULTIPROC_ENV  # noqa: PLC0415 - same

    observe = ObserveSettings.from_env()
    given = os.environ.get(MULTIPROC_ENV)
    directory = Path(given) if given else Path(tempfile.mkdtemp(prefix="s2s-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.db"):
        old.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)
    server = None
    try:
        if observe.metrics and observe.metrics_port is not None:
            from s2s.observe.prometheus import multiprocess_registry, serve_metrics  # noqa: PLC0415

            server = serve_metrics(
                multiprocess_registry(), observe.metrics_host, observe.metrics_port, observe.metrics_token
            )
        yield
    finally:
        if server is not None:
            server.shutdown()
        if not given:
            shutil.rmtree(directory, ignore_errors=True)


# uvicorn limits `s2s serve` sets (docs/deployment.md, "Limits"). uvicorn has no deadline for a
# request's headers: a client trickling them holds one connection until it gives up, so the number
# of connections and tasks is capped (uvicorn answers 503 beyond it) and idle keep-alive
# connections are closed quickly; the token route has its own deadline for the body
# (S2S_BODY_TIMEOUT). Headers are limited by the HTTP parser (httptools: 80 KiB; h11: below).
LIMIT_CONCURRENCY = 1024
TIMEOUT_KEEP_ALIVE = 5
MAX_INCOMPLETE_EVENT = 16 * 1024
BACKLOG = 1024
GRACEFUL_SHUTDOWN = 10


def _check_tls(settings: IssuerSettings) -> None:
    """Load the certificate and key once before starting, so a wrong path, a key that does not
    match the certificate or an encrypted key ends with one ``s2s: error:`` line (uvicorn would
    print a traceback). The message names files, never their contents."""
    if settings.ssl_certfile is None or settings.ssl_keyfile is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # An encrypted key would prompt on the terminal: a password callback refuses instead.
        context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile, password=lambda: b"")
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(
            f"TLS certificate {settings.ssl_certfile} / key {settings.ssl_keyfile} cannot be used "
            f"({reason}): both PEM, unencrypted key, the key matching the certificate"
        ) from None


_path = click.Path(dir_okay=False, path_type=str)


@main.command("serve")
@click.option("--host", envvar="S2S_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="S2S_PORT", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--demo", is_flag=True, help="Create a demo client (if missing) and print how to get a token.")
@click.option("--access-log", is_flag=True, help="Log every request (off by default: it costs throughput).")
@click.option(
    "--limit-concurrency",
    envvar="S2S_LIMIT_CONCURRENCY",
    type=click.IntRange(1),
    default=LIMIT_CONCURRENCY,
    show_default=True,
    help="Most connections and requests at once; beyond it uvicorn answers 503.",
)
@click.option(
    "--timeout-keep-alive",
    envvar="S2S_TIMEOUT_KEEP_ALIVE",
    type=click.IntRange(1, 300),
    default=TIMEOUT_KEEP_ALIVE,
    show_default=True,
    help="Seconds an idle keep-alive connection stays open.",
)
@click.option("--ssl-certfile", type=_path, help="PEM certificate (chain) for HTTPS (env S2S_SSL_CERTFILE).")
@click.option("--ssl-keyfile", type=_path, help="PEM private key for HTTPS (env S2S_SSL_KEYFILE).")
@click.option(
    "--workers",
    envvar="S2S_WORKERS",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes serving the port; they share the key store and the issuer state.",
)
def serve_command(
    *,
    host: str,
    port: int,
    demo: bool,
    access_log: bool,
    limit_concurrency: int,
    timeout_keep_alive: int,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    workers: int,
) -> None:
    """Run the issuer (settings from S2S_* variables; the issuer URL defaults to http://HOST:PORT,
    https://HOST:PORT with a certificate)."""

    from s2s.litestar.issuer import configure_host_logging, create_issuer_app  # noqa: PLC0415 - same
    from s2s.observe import ObserveSettings  # noqa: PLC0415 - same

    configure_host_logging()
    settings = IssuerSettings.from_env()
    ObserveSettings.from_env()  # a bad S2S_METRICS_* is one error line, before the port is bound
    if ssl_certfile is not None or ssl_keyfile is not None:  # options replace both variables
        settings = replace(settings, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    _check_tls(settings)
    if "S2S_ISSUER" not in os.environ:
        url_host = f"[{host}]" if ":" in host else host
        scheme = "https" if settings.tls else "http"
        settings = replace(settings, issuer=f"{scheme}://{url_host}:{port}")
    settings = replace(settings, host=host, port=port)
    sock = _bind(host, port)
    secret = prepare(settings, demo=demo)
    click.echo(f"issuer {settings.issuer} (token endpoint {settings.token_endpoint})")
    if demo:
        _demo_instructions(settings, secret)
    options: dict[str, Any] = {
        "access_log": access_log,
        "log_level": "info",
        "lifespan": "on",
        "limit_concurrency": limit_concurrency,
        "timeout_keep_alive": timeout_keep_alive,
        "h11_max_incomplete_event_size": MAX_INCOMPLETE_EVENT,
        "backlog": BACKLOG,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN,
        "ssl_certfile": settings.ssl_certfile,
        "ssl_keyfile": settings.ssl_keyfile,
    }
    if workers > 1:
        _run_workers(settings, sock, workers, **options)
        return
    app = create_issuer_app(settings)
    _serve(app, sock, **options)


@main.group("state")
def state_group() -> None:
    """The issuer's shared replay and rate-limit state (S2S_STATE)."""


@state_group.command("init")
@click.option(
    "--state",
    "state_url",
    envvar="S2S_STATE",
    required=True,
    help="dynamodb://TABLE[?region=R] (env S2S_STATE).",
)
def state_init_command(state_url: str) -> None:
    """Create the DynamoDB table (on-demand, TTL on `ttl`) if it does not exist."""
    kind, table, region = parse_state_url(state_url)
    if kind != "dynamodb" or table is None:
        click.echo(f"S2S_STATE is {kind}: nothing to create (a SQLite file is created on first use)")
        return
    from s2s.issuer._dynamodb import create_state_table  # noqa: PLC0415 - needs boto3

    created = create_state_table(table, region=region)
    click.echo(f"DynamoDB table {table} {'created' if created else 'exists'}; TTL attribute ttl enabled")
