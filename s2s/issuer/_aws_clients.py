"""The issuer's client registry in one AWS Secrets Manager secret (shared by every replica).

The secret holds the same ``s2s.clients/1`` JSON document as the file registry. The issuer only
reads it: the first token request loads it, later reads happen at most every ``reload_interval``
seconds in a background thread (a Secrets Manager call never stalls a token request, and an
unreachable Secrets Manager keeps the last good clients). ``s2s clients add|remove`` change it with
the same compare-and-swap as the Secrets Manager key store, so concurrent changes lose nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from s2s.aws import AwsSettings, SecretsManager, SecretsManagerDocument
from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError, S2SError, VersionConflict
from s2s.issuer._clients import Client, prune_expired_secrets
from s2s.issuer._registry import add_change, dump_registry, read_registry, refuse_emptying, remove_change
from s2s.issuer.errors import RegistryError, RegistryUnavailable
from s2s.secrets._references import parse_location

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["SecretsManagerClientRegistry"]

log = logging.getLogger("s2s.issuer.aws_clients")


class SecretsManagerClientRegistry:
    """Clients in the secret ``secret_name``.

    ``background=False`` reloads inline instead of in a thread (deterministic tests, scripts).
    """

    # Calls go over the network: the issuer runs its token requests in a worker pool.
    blocks_on_io = True

    def __init__(
        self,
        secret_name: str,
        client: SecretsManagerClient | None = None,
        *,
        region: str | None = None,
        session: boto3.Session | None = None,
        aws: AwsSettings | None = None,
        clock: Clock = system_clock,
        reload_interval: float = 30.0,
        background: bool = True,
        attempts: int = 10,
    ) -> None:
        if not secret_name:
            raise ConfigError("aws-sm client registry needs a secret name: aws-sm://NAME")
        if reload_interval <= 0:
            raise ConfigError("the client registry reload interval must be > 0 seconds")
        self.secret_name = secret_name
        secrets = SecretsManager(client, region=region, session=session, settings=aws)
        self._document = SecretsManagerDocument(
            secret_name, secrets, noun="client registry", error=RegistryError
        )
        self._clock = clock
        self._reload_interval = reload_interval
        self._background = background
        self._attempts = attempts
        self._clients: dict[str, Client] = {}
        self._version: str | None = None
        self._loaded = False
        self._checked_at: float | None = None
        self._reloading = False
        self._mutex = threading.Lock()

    @classmethod
    def from_url(
        cls,
        url: str,
        client: SecretsManagerClient | None = None,
        *,
        session: boto3.Session | None = None,
        clock: Clock = system_clock,
    ) -> SecretsManagerClientRegistry:
        """``aws-sm://NAME``, optionally ``?region=eu-west-1&reload=SECONDS`` (default 30)."""
        location = parse_location(url, "client registry", reload=True)
        return cls(
            location.name,
            client,
            region=location.region,
            session=session,
            clock=clock,
            reload_interval=location.reload or 30.0,
        )

    @property
    def url(self) -> str:
        return self._document.url

    @property
    def client(self) -> SecretsManagerClient:
        client: SecretsManagerClient = self._document.secrets.client
        return client

    def __repr__(self) -> str:
        return f"SecretsManagerClientRegistry({self.secret_name!r})"

    # -- reading (the issuer) ------------------------------------------------------------------
    def get(self, client_id: str) -> Client | None:
        if not self._loaded:
            self._first_load()
        else:
            self._maybe_reload()
        return self._clients.get(client_id)

    def probe(self) -> None:
        """Raise unless the clients are loaded (the readiness probe); loads them if not yet."""
        if not self._loaded:
            self._first_load()  # shares the token path's back-off between failed first loads

    def _first_load(self) -> None:
        now = self._clock.monotonic()
        with self._mutex:
            if self._loaded:
                return
            if self._checked_at is not None and now - self._checked_at < min(self._reload_interval, 5.0):
                raise RegistryUnavailable()
            self._checked_at = now
        try:
            self.refresh()
        except Exception as exc:
            log.warning("client registry %s cannot be loaded: %s", self.url, _reason(exc))
            raise RegistryUnavailable() from None

    def _maybe_reload(self) -> None:
        now = self._clock.monotonic()
        checked = self._checked_at
        if checked is not None and now - checked < self._reload_interval:
            return
        with self._mutex:
            if self._reloading or (
                self._checked_at is not None and now - self._checked_at < self._reload_interval
            ):
                return
            self._checked_at = now
            self._reloading = True
        if self._background:
            threading.Thread(target=self._reload_quietly, name="s2s-clients-reload", daemon=True).start()
        else:
            self._reload_quietly()

    def _reload_quietly(self) -> None:
        try:
            self.refresh()
        except Exception as exc:
            # The last good clients stay in force; `s2s clients list` shows the error itself.
            log.warning(
                "client registry %s reload failed, keeping the last good clients: %s", self.url, _reason(exc)
            )
        finally:
            self._reloading = False

    def refresh(self) -> bool:
        """Read the secret now; True if the clients changed. Errors are raised (and nothing changes)."""
        text, version = self._document.read()
        if self._loaded and version == self._version:
            return False
        clients, explicit = self._parse_document(text) if version is not None else ({}, False)
        if refuse_emptying(self._clients, clients, explicit, self.url):
            self._version = version  # reported once: the next change of the secret is read again
            return False
        with self._mutex:
            self._clients, self._version, self._loaded = clients, version, True
        log.info("client registry %s loaded: %d client(s)", self.url, len(clients))
        return True

    def all(self) -> tuple[Client, ...]:
        """All clients, read from Secrets Manager now (errors are raised, not hidden)."""
        text, version = self._document.read()
        clients = self._parse(text) if version is not None else {}
        return tuple(sorted(clients.values(), key=lambda c: c.client_id))

    def _parse(self, text: Any) -> dict[str, Client]:
        return self._parse_document(text)[0]

    def _parse_document(self, text: Any) -> tuple[dict[str, Client], bool]:
        if not isinstance(text, str):
            raise RegistryError(f"{self.url}: the secret has no string value")
        return read_registry(text, self.url)

    # -- writing (the CLI) ---------------------------------------------------------------------
    def update(self, change: Callable[[dict[str, Client]], None]) -> None:
        """Apply ``change`` to the clients and write them with a compare-and-swap, retrying on conflict."""
        for _ in range(self._attempts):
            text, version = self._document.read()
            clients = self._parse(text) if version is not None else {}
            change(clients)
            prune_expired_secrets(clients, self._clock.now())  # rotated secrets past their grace
            try:
                new_version = self._document.write(dump_registry(clients), version)
            except VersionConflict:
                continue
            with self._mutex:
                self._clients, self._version, self._loaded = clients, new_version, True
            return
        raise VersionConflict(f"{self.url}: gave up after {self._attempts} concurrent changes")

    def add(self, client: Client, *, replace_existing: bool = False) -> None:
        self.update(add_change(client, replace_existing=replace_existing))

    def remove(self, client_id: str) -> None:
        self.update(remove_change(client_id))


def _reason(exc: BaseException) -> str:
    # Our errors carry vetted descriptions; anything else is named by type only.
    return exc.description if isinstance(exc, S2SError) else type(exc).__name__
