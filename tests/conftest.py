from __future__ import annotations

import pytest

from s2s.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
