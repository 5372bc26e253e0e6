from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from s2s.clock import FakeClock
from s2s.issuer import Client, InMemoryClientRegistry, IssuerSettings
from s2s.keys import RotationPolicy
from s2s.litestar.issuer import IssuerRuntime, create_issuer_app
from tests.issuer.helpers import (
    AUDIENCE,
    ISSUER,
    OTHER_AUDIENCE,
    SECRET_HASH,
    PkjClient,
    make_pkj,
)
from tests.support import MemoryKeyStore


@pytest.fixture
def clock() -> FakeClock:
    # Starts at the real time so that PyJWT, an independent verifier with its own clock, agrees.
    return FakeClock(time.time())


@pytest.fixture
def pkj() -> PkjClient:
    return make_pkj()


@pytest.fixture
def settings() -> IssuerSettings:
    return IssuerSettings(
        issuer=ISSUER,
        rotation=RotationPolicy(),
        run_rotation=True,
        rate_limit=1000,
        rate_burst=1000,
    )


@pytest.fixture
def registry(pkj: PkjClient) -> InMemoryClientRegistry:
    return InMemoryClientRegistry(
        [
            Client(
                client_id="svc",
                audiences=(AUDIENCE,),
                scopes=("orders:read", "orders:write"),
                roles=("reader",),
                permissions=("orders.list",),
                features=("beta",),
                secret_hash=SECRET_HASH,
            ),
            Client(
                client_id="multi",
                audiences=(AUDIENCE, OTHER_AUDIENCE),
                scopes=("a",),
                max_ttl=60,
                secret_hash=SECRET_HASH,
            ),
            Client(
                client_id=pkj.client_id,
                audiences=(AUDIENCE,),
                scopes=("orders:read",),
                jwks=(pkj.public_jwk,),
            ),
        ]
    )


@pytest.fixture
def store() -> MemoryKeyStore:
    return MemoryKeyStore()


@pytest.fixture
def app(
    settings: IssuerSettings, store: MemoryKeyStore, registry: InMemoryClientRegistry, clock: FakeClock
) -> Litestar:
    return create_issuer_app(settings, store=store, registry=registry, clock=clock, reload_loop=False)


@pytest.fixture
def runtime(app: Litestar) -> IssuerRuntime:
    rt: IssuerRuntime = app.state.s2s_issuer
    return rt


@pytest.fixture
def client(app: Litestar, caplog: pytest.LogCaptureFixture) -> Iterator[TestClient[Litestar]]:
    caplog.set_level(logging.DEBUG)
    with TestClient(app, base_url=ISSUER) as tc:
        yield tc
