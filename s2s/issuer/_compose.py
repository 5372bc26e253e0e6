"""The composition root: an issuer built from its settings, in one place.

``s2s serve``, the Litestar app (:func:`s2s.litestar.issuer.create_issuer_app`) and the service in
``services/issuer`` all build their issuer here, so a choice made from the settings (where keys are
made, which state store, which signer) is made once and the same way everywhere. ``s2s keys``
shares the key half: :meth:`IssuerSettings.key_factories`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from s2s.clock import Clock, system_clock
from s2s.issuer._registry import ClientRegistry, open_client_registry
from s2s.issuer.assertion import ReplayCache
from s2s.issuer.keyring import KeyManager
from s2s.issuer.metrics import IssuerMetrics
from s2s.issuer.ratelimit import RateLimiter
from s2s.issuer.settings import IssuerSettings
from s2s.issuer.state import IssuerState, open_state
from s2s.issuer.token import TokenEndpoint
from s2s.keys._factories import KeyFactories
from s2s.keys.kms import RoutingSigner
from s2s.keys.model import KeySet
from s2s.keys.rotation import ensure_keys
from s2s.keys.signing import Signer
from s2s.keys.store import KeyStore, open_keystore, update_keyset

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["IssuerParts", "IssuerRuntime", "build_issuer", "create_first_keys"]


@dataclass(frozen=True, slots=True)
class IssuerRuntime:
    """A built issuer: what an HTTP adapter serves (``app.state.s2s_issuer`` in the Litestar app)."""

    settings: IssuerSettings
    keys: KeyManager
    endpoint: TokenEndpoint
    registry: ClientRegistry
    metrics: IssuerMetrics
    state: IssuerState


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


def build_issuer(settings: IssuerSettings, **parts: Unpack[IssuerParts]) -> IssuerRuntime:
    """The issuer ``settings`` describe; each keyword of :class:`IssuerParts` replaces one part
    (tests, embedding).

    ``state`` (default: what ``S2S_STATE`` names) serves as replay cache and rate limiter unless
    ``replay`` / ``limiter`` are given. ``signer`` defaults to local-or-KMS per key
    (:class:`~s2s.keys.kms.RoutingSigner`). ``factories`` defaults to what ``S2S_SIGNER`` names.
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
            metrics=IssuerMetrics(),
            factories=parts.get("factories") or settings.key_factories(),
        )
    state = parts.get("state")
    if state is None:
        state = open_state(settings.state, rate=settings.rate_limit, burst=settings.rate_burst, clock=clock)
    endpoint = TokenEndpoint(
        settings,
        registry,
        keys,
        clock=clock,
        signer=parts.get("signer") or RoutingSigner(),
        replay=parts.get("replay") or state,
        limiter=parts.get("limiter") or state,
        metrics=keys.metrics,
    )
    return IssuerRuntime(settings, keys, endpoint, registry, keys.metrics, state)


def create_first_keys(settings: IssuerSettings, *, clock: Clock = system_clock) -> tuple[KeyStore, KeySet]:
    """Give an empty key store its first keys, unless ``create_keys`` is off; the store and its keyset.

    With ``S2S_CREATE_KEYS=false`` keys come only from ``s2s keys init`` (a deployment's init job).
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
    return store, keyset
