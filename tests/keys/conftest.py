from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from s2s.keys import SIGNING_ALGS, KeyState, SigningKey, generate_key


class KeyPool:
    """A cheap key factory for tests: RSA keys are generated once per session and reused.

    Each call still returns a distinct key (distinct kid): keysets refuse duplicates.
    """

    def __init__(self) -> None:
        self._made: dict[str, list[SigningKey]] = {alg: [] for alg in SIGNING_ALGS}
        self._cursor: dict[str, Iterator[int]] = {alg: itertools.count() for alg in SIGNING_ALGS}

    def template(self, alg: str, index: int) -> SigningKey:
        made = self._made[alg]
        while len(made) <= index:
            made.append(generate_key(alg, now=0.0))
        return made[index]

    def __call__(self, alg: str, now: float) -> SigningKey:
        key = self.template(alg, next(self._cursor[alg]))
        return key.with_state(KeyState.NEXT, created_at=now, activated_at=None)

    def fresh(self) -> KeyPool:
        """A factory over the same generated keys, restarting at the first."""
        pool = KeyPool()
        pool._made = self._made
        return pool


@pytest.fixture(scope="session")
def _key_cache() -> KeyPool:
    return KeyPool()


@pytest.fixture
def key_factory(_key_cache: KeyPool) -> KeyPool:
    return _key_cache.fresh()


@pytest.fixture(scope="session")
def one_key_per_alg() -> dict[str, SigningKey]:
    return {alg: generate_key(alg, now=1_700_000_000.0) for alg in SIGNING_ALGS}
