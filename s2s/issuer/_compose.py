"""The composition root: an issuer built from its settings, in one place.

``s2s serve``, the Litestar app (:func:`s2s.litestar.issuer.create_issuer_app`) and the service in
``services/issuer`` all build their issuer here, so a choice made from the settings (where keys are
made, which state store, which signer) is made once and the same way everywhere. ``s2s keys``
shares the key half: :meth:`IssuerSettings.key_factories`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from s2s.aws import AwsSettings
from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError
from s2s.issuer._assertion import ReplayCache
from s2s.issuer._fallback_state import LocalFallbackState
from s2s.issuer._keyring import KeyManager, unsignable
from s2s.issuer._offload import BlockingPool
from s2s.issuer._ratelimit import RateLimiter
from s2s.issuer._readiness import Probe, ReadinessMonitor
from s2s.issuer._registry import ClientRegistry, open_client_registry
from s2s.issuer._settings import IssuerSettings
from s2s.issuer._state import InMemoryState, IssuerState, open_state
from s2s.issuer._token import TokenEndpoint
from s2s.keys._factories import KeyFactories
from s2s.keys._kms import RoutingSigner, SigningUnavailable
from s2s.keys._model import KeySet, SigningKey
from s2s.keys._rotation import ensure_keys
from s2s.keys._signing import Signer
from s2s.keys._store import KeyStore, open_keystore, update_keyset
from s2s.observe import HUB, Observer

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["IssuerParts", "IssuerRuntime", "build_issuer", "create_first_keys"]

log = logging.getLogger("s2s.issuer.keys")


class _SignerGuard:
    """A signer whose configuration errors (a key it cannot use) are "signing unavailable".

    The key manager refuses keysets that cannot sign, so this is the last line: a token request
    that meets such a key answers 503 ``temporarily_unavailable``, never 500.
    """

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def sign(self, key: SigningKey, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        try:
            return self.signer.sign(key, header, claims)
        except ConfigError as exc:
            raise SigningUnavailable(f"the signer cannot use key {key.kid}: {exc.description}") from None


@dataclass(frozen=True, slots=True)
class IssuerRuntime:
    """A built issuer: what an HTTP adapter serves (``app.state.s2s_issuer`` in the Litestar app)."""

    settings: IssuerSettings
    keys: KeyManager
    endpoint: TokenEndpoint
    registry: ClientRegistry
    observer: Observer
    state: IssuerState
    readiness: ReadinessMonitor
    pool: BlockingPool | None = None


class IssuerParts(TypedDict, total=False):
    """The parts of an issuer that :func:`build_issuer` (and the Litestar app) let a caller replace."""

    store: KeyStore
    registry: ClientRegistry
    clock: Clock
    signer: Signer
    replay: ReplayCache
    limiter: RateLimiter
    state: IssuerState
    factories: KeyFactories
    keys: KeyManager
    observer: Observer


def build_issuer(settings: IssuerSettings, **parts: Unpack[IssuerParts]) -> IssuerRuntime:
    """The issuer ``settings`` describe; each keyword of :class:`IssuerParts` replaces one part
    (tests, embedding).

    ``state`` (default: what ``S2S_STATE`` names) serves as replay cache and rate limiter unless
    ``replay`` / ``limiter`` are given; with ``state_failure_mode="local"`` it is wrapped in a
    :class:`~s2s.issuer._fallback_state.LocalFallbackState`. ``signer`` defaults to local-or-KMS per key
    (:class:`~s2s.keys._kms.RoutingSigner`). ``factories`` defaults to what ``S2S_SIGNER`` names.
    ``keys`` replaces the whole key manager (then ``store`` and ``factories`` are not used).
    """
    clock = parts.get("clock", system_clock)
    registry = parts.get("registry") or open_client_registry(settings.clients, clock=clock)
    keys = parts.get("keys")
    if keys is None:
        keys = KeyManager(
            parts.get("store") or open_keystore(settings.keystore),
            settings.rotation,
            clock=clock,
            run_rotation=settings.run_rotation,
            create_keys=settings.create_keys,
            observer=parts.get("observer", HUB),
            factories=parts.get("factories") or settings.key_factories(),
        )
    state = parts.get("state")
    if state is None:
        state = open_state(settings.state, rate=settings.rate_limit, burst=settings.rate_burst, clock=clock)
    degradable: tuple[str, ...] = ()
    if settings.state_failure_mode == "local" and not isinstance(state, InMemoryState):
        # Explicitly chosen: this replica's memory stands in while the shared state is down.
        local = InMemoryState(settings.rate_limit, settings.rate_burst, clock=clock)
        state = LocalFallbackState(state, local, clock=clock)
        degradable = ("state store",)
    endpoint = TokenEndpoint(
        settings,
        registry,
        keys,
        clock=clock,
        signer=_SignerGuard(parts.get("signer") or RoutingSigner()),
        replay=parts.get("replay") or state,
        limiter=parts.get("limiter") or state,
        observer=parts.get("observer", keys.observer),
    )
    probes: dict[str, Probe] = {}
    for name, part in (("client registry", registry), ("state store", state)):
        probe = getattr(part, "probe", None)
        if callable(probe):
            probes[name] = probe
    readiness = ReadinessMonitor(keys, probes, clock=clock, degradable=degradable)
    pool = None
    if _blocks_on_io(settings, registry, state):
        aws = AwsSettings.from_env()
        # A caller waits about one AWS read timeout, then gets 503 + Retry-After (issue 10).
        pool = BlockingPool(deadline=aws.read_timeout + aws.connect_timeout)
        endpoint.offload = pool
    return IssuerRuntime(settings, keys, endpoint, registry, endpoint.observer, state, readiness, pool)


def _blocks_on_io(settings: IssuerSettings, registry: ClientRegistry, state: IssuerState) -> bool:
    """Whether a token request may wait on the network: DynamoDB state, a Secrets Manager registry,
    KMS signing (a KMS signer, or keys kept in Secrets Manager, which may be KMS keys)."""
    return (
        getattr(state, "blocks_on_io", False)
        or getattr(registry, "blocks_on_io", False)
        or settings.signer is not None
        or settings.keystore.startswith("aws-sm://")
    )


def create_first_keys(settings: IssuerSettings, *, clock: Clock = system_clock) -> tuple[KeyStore, KeySet]:
    """Give an empty key store its first keys, unless ``create_keys`` is off; the store and its keyset.

    With ``S2S_CREATE_KEYS=false`` keys come only from ``s2s keys init`` (a deployment's init job).
    A keyset that cannot sign (:func:`~s2s.issuer._keyring.unsignable`) refuses the start:
    :class:`ConfigError`, one line.
    """
    store = open_keystore(settings.keystore)
    factories = settings.key_factories()
    now = clock.now()

    def first_keys(keyset: KeySet) -> KeySet:
        if len(keyset) or not settings.create_keys:
            return keyset
        return ensure_keys(keyset, now, settings.rotation, factories.for_keyset(keyset))

    keyset = update_keyset(store, first_keys)
    factories.settle(keyset)
    refused = unsignable(keyset)
    if refused:
        raise ConfigError(f"the keyset in {store.url} cannot sign: {refused}")
    return store, keyset
