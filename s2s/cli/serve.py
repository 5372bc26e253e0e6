"""``s2s serve``: run the issuer on this machine with uvicorn.

The key store gets its first keys on first start; ``--demo`` also registers a demo client and
prints how to fetch a token with it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from s2s.cli import fail, main
from s2s.clock import system_clock
from s2s.issuer import IssuerSettings, create_first_keys, new_client, open_client_registry
from s2s.issuer.state import parse_state_url

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
    if not demo:
        return None
    registry = open_client_registry(settings.clients)
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


def _run_workers(settings: IssuerSettings, sock: socket.socket, workers: int, *, access_log: bool) -> None:
    """N processes on the socket bound here: each worker builds the app from the environment (so
    the URL this command worked out goes there) and loads the same key store, client registry and
    issuer state; keys were created above, once, before any worker started."""
    os.environ.update(S2S_ISSUER=settings.issuer, S2S_HOST=settings.host, S2S_PORT=str(settings.port))
    _serve(
        "s2s.litestar.issuer:create_issuer_app",
        sock,
        workers=workers,
        factory=True,
        access_log=access_log,
        log_level="info",
        lifespan="on",
    )


@main.command("serve")
@click.option("--host", envvar="S2S_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="S2S_PORT", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--demo", is_flag=True, help="Create a demo client (if missing) and print how to get a token.")
@click.option("--access-log", is_flag=True, help="Log every request (off by default: it costs throughput).")
@click.option(
    "--workers",
    envvar="S2S_WORKERS",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes serving the port; they share the key store and the issuer state.",
)
def serve_command(host: str, port: int, demo: bool, access_log: bool, workers: int) -> None:
    """Run the issuer (settings from S2S_* variables; the issuer URL defaults to http://HOST:PORT)."""

    from s2s.litestar.issuer import configure_host_logging, create_issuer_app  # noqa: PLC0415 - same

    configure_host_logging()
    settings = IssuerSettings.from_env()
    if "S2S_ISSUER" not in os.environ:
        url_host = f"[{host}]" if ":" in host else host
        settings = replace(settings, issuer=f"http://{url_host}:{port}")
    settings = replace(settings, host=host, port=port)
    sock = _bind(host, port)
    secret = prepare(settings, demo=demo)
    click.echo(f"issuer {settings.issuer} (token endpoint {settings.token_endpoint})")
    if demo:
        _demo_instructions(settings, secret)
    if workers > 1:
        _run_workers(settings, sock, workers, access_log=access_log)
        return
    app = create_issuer_app(settings)
    _serve(app, sock, access_log=access_log, log_level="info", lifespan="on")


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
    if kind == "memory" or table is None:
        click.echo("S2S_STATE is memory: nothing to create")
        return
    from s2s.issuer.dynamodb import create_state_table  # noqa: PLC0415 - needs boto3

    created = create_state_table(table, region=region)
    click.echo(f"DynamoDB table {table} {'created' if created else 'exists'}; TTL attribute ttl enabled")
