"""Client registries: where the issuer looks clients up, and how the CLI changes them.

One protocol, :class:`ClientRegistry` (``get``: called on every token request, must be cheap), and
:class:`ManagedClientRegistry` for the stores the CLI lists and changes. Implementations: in memory
(tests, embedding), one JSON file (:class:`FileClientRegistry`), and one AWS Secrets Manager secret
(:class:`~s2s.issuer._aws_clients.SecretsManagerClientRegistry`). File and secret hold the same
``s2s.clients/1`` document; :func:`open_client_registry` picks one from a URL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from s2s._files import check_private_file, exclusive_lock, write_atomic
from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError, S2SError
from s2s.issuer._clients import Client, prune_expired_secrets
from s2s.issuer.errors import RegistryError

__all__ = [
    "CLEARED_MARKER",
    "REGISTRY_FORMAT",
    "ClientRegistry",
    "FileClientRegistry",
    "InMemoryClientRegistry",
    "ManagedClientRegistry",
    "add_change",
    "dump_registry",
    "open_client_registry",
    "parse_registry",
    "read_registry",
    "refuse_emptying",
    "remove_change",
]

REGISTRY_FORMAT = "s2s.clients/1"
# Written by the CLI when a change leaves no client: the one way an empty registry is adopted by an
# issuer that had clients (a missing or blank registry is a lost one until an operator says so).
CLEARED_MARKER = "cleared_by"

log = logging.getLogger("s2s.issuer.clients")


def refuse_emptying(
    before: Mapping[str, Client], after: Mapping[str, Client], explicit: bool, where: str
) -> bool:
    """True (and one ERROR line) when a registry that had clients now reads as empty without the
    CLI's marker: the issuer keeps its last good clients rather than refuse every caller."""
    if after or not before or explicit:
        return False
    log.error(
        "client registry %s is empty or missing but was not cleared by `s2s clients`: keeping the "
        "last good %d client(s); restore it from backup (see docs/deployment-aws.md)",
        where,
        len(before),
    )
    return True


class ClientRegistry(Protocol):
    def get(self, client_id: str) -> Client | None:
        """The client, or ``None`` if unknown. Called on every token request: must be cheap."""
        ...


class ManagedClientRegistry(ClientRegistry, Protocol):
    """A registry the CLI can list and change (file or Secrets Manager)."""

    @property
    def url(self) -> str: ...

    def all(self) -> tuple[Client, ...]:
        """All clients, read now (errors are raised, not hidden)."""
        ...

    def add(self, client: Client, *, replace_existing: bool = False) -> None: ...

    def remove(self, client_id: str) -> None: ...

    def update(self, change: Callable[[dict[str, Client]], None]) -> None:
        """Apply ``change`` to the clients and write them (atomically, refusing lost updates)."""
        ...


class InMemoryClientRegistry:
    def __init__(self, clients: Iterable[Client] = ()) -> None:
        self._clients = {c.client_id: c for c in clients}

    def get(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def all(self) -> tuple[Client, ...]:
        return tuple(self._clients.values())

    def put(self, client: Client) -> None:
        self._clients[client.client_id] = client


class FileClientRegistry:
    """Clients in one JSON file: atomic replace, mode 0600, an exclusive lock for writers.

    Readers see a change made by another process (``s2s clients add`` while the issuer runs)
    within ``reload_interval`` seconds: the file's identity is checked at most that often.
    """

    FORMAT = REGISTRY_FORMAT

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Clock = system_clock, reload_interval: float = 2.0
    ):
        self.path = Path(path)
        self._clock = clock
        self._reload_interval = reload_interval
        self._clients: dict[str, Client] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked_at: float | None = None
        self._loaded = False
        self._mutex = threading.Lock()

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def probe(self) -> None:
        """Raise unless the registry has been read once (the readiness probe); reads it if not."""
        if self._loaded:
            return
        with self._mutex:
            stamp = self._file_stamp()
            self._clients, self._stamp, self._loaded = self._read(), stamp, True

    # -- reading -----------------------------------------------------------------------------
    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> dict[str, Client]:
        return self._read_document()[0]

    def _read_document(self) -> tuple[dict[str, Client], bool]:
        """The clients, and whether an empty registry was cleared explicitly (a missing file was not)."""
        check_private_file(self.path, RegistryError)  # it holds secret hashes: 0600, as the keyset
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}, False
        except OSError as exc:
            raise RegistryError(f"cannot read client registry {self.path}: {exc.strerror}") from None
        return read_registry(raw, str(self.path))

    def _refresh(self) -> None:
        now = self._clock.monotonic()
        if self._checked_at is not None and now - self._checked_at < self._reload_interval:
            return
        with self._mutex:
            self._checked_at = now
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            # A broken file keeps the last good clients (the error surfaces in `s2s clients list`).
            with contextlib.suppress(S2SError):
                clients, explicit = self._read_document()
                self._stamp = stamp
                if refuse_emptying(self._clients, clients, explicit, self.url):
                    return
                self._clients, self._loaded = clients, True

    def get(self, client_id: str) -> Client | None:
        self._refresh()
        return self._clients.get(client_id)

    def all(self) -> tuple[Client, ...]:
        """All clients, read from the file now (errors are raised, not hidden)."""
        return tuple(sorted(self._read().values(), key=_by_id))

    # -- writing -----------------------------------------------------------------------------
    def update(self, change: Callable[[dict[str, Client]], None]) -> None:
        """Apply ``change`` to the clients under the lock, then write them atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with exclusive_lock(self.path.with_name(self.path.name + ".lock")):
            clients = self._read()
            change(clients)
            prune_expired_secrets(clients, self._clock.now())  # rotated secrets past their grace
            write_atomic(self.path, dump_registry(clients).encode(), tmp_prefix=f".{self.path.name}.")
        self._checked_at = None

    def add(self, client: Client, *, replace_existing: bool = False) -> None:
        self.update(add_change(client, replace_existing=replace_existing))

    def remove(self, client_id: str) -> None:
        self.update(remove_change(client_id))


def _by_id(client: Client) -> str:
    return client.client_id


def parse_registry(raw: str | bytes, where: str) -> dict[str, Client]:
    """The clients of an ``s2s.clients/1`` JSON document (file or secret); ``where`` names it in errors."""
    return read_registry(raw, where)[0]


def read_registry(raw: str | bytes, where: str) -> tuple[dict[str, Client], bool]:
    """The clients of an ``s2s.clients/1`` document, and whether it carries the CLI's
    :data:`CLEARED_MARKER` (an empty registry written on purpose)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ConfigError(f"client registry {where} is not valid JSON") from None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != REGISTRY_FORMAT
        or not isinstance(doc.get("clients"), list)
    ):
        raise ConfigError(f"client registry {where} is not an {REGISTRY_FORMAT} document")
    clients: dict[str, Client] = {}
    for record in doc["clients"]:
        client = Client.from_document(record)
        if client.client_id in clients:
            raise ConfigError(f"client registry {where}: duplicate client {client.client_id}")
        clients[client.client_id] = client
    return clients, bool(doc.get(CLEARED_MARKER))


def dump_registry(clients: Mapping[str, Client]) -> str:
    """The ``s2s.clients/1`` JSON document for ``clients`` (sorted, so equal registries are equal text)."""
    doc: dict[str, Any] = {
        "format": REGISTRY_FORMAT,
        "clients": [c.to_document() for c in sorted(clients.values(), key=_by_id)],
    }
    if not clients:
        # Only the CLI writes documents: an empty one it writes is an operator's decision.
        doc[CLEARED_MARKER] = "s2s clients"
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def add_change(client: Client, *, replace_existing: bool = False) -> Callable[[dict[str, Client]], None]:
    """The registry change that adds ``client`` (refused if its id exists, unless replacing)."""

    def change(clients: dict[str, Client]) -> None:
        if client.client_id in clients and not replace_existing:
            raise ConfigError(f"client {client.client_id} already exists (remove it first)")
        clients[client.client_id] = client

    return change


def remove_change(client_id: str) -> Callable[[dict[str, Client]], None]:
    """The registry change that removes ``client_id`` (refused if it is unknown)."""

    def change(clients: dict[str, Client]) -> None:
        if clients.pop(client_id, None) is None:
            raise ConfigError(f"no client {client_id!r}")

    return change


def open_client_registry(url: str, *, clock: Clock = system_clock) -> ManagedClientRegistry:
    """``file://PATH`` (or a bare path) to a JSON registry, or ``aws-sm://NAME[?region=R&reload=S]``
    for the same document in a Secrets Manager secret (shared by replicas; see
    :class:`~s2s.issuer._aws_clients.SecretsManagerClientRegistry`)."""
    if url.startswith("aws-sm://"):
        # Imported on demand: the core must load without the adapters' optional dependencies.
        from s2s.issuer._aws_clients import SecretsManagerClientRegistry  # noqa: PLC0415

        return SecretsManagerClientRegistry.from_url(url, clock=clock)
    if url.startswith("file://") or "://" not in url:
        return FileClientRegistry(url.removeprefix("file://"), clock=clock)
    raise ConfigError(f"unknown client registry {url.split('://', 1)[0]!r}: use file://PATH or aws-sm://NAME")
