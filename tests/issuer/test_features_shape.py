"""Features in the registration's shape: a list of names, or an object (ioserver-oidc's
``Record<string, unknown>``), issued into tokens as given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.issuer import Client, Minter
from s2s.keys import LocalSigner
from tests.issuer.cert_helpers import clients_add
from tests.issuer.helpers import AUDIENCE, ISSUER, SECRET_HASH

OBJECT = {"beta": True, "limit": 5, "off": False}


def client(features: Any) -> Client:
    return Client(client_id="svc", audiences=(AUDIENCE,), features=features, secret_hash=SECRET_HASH)


@pytest.mark.parametrize("features", [["beta", "export"], OBJECT])
def test_tokens_carry_features_in_the_registered_shape(features: Any) -> None:
    registered = client(features)
    claims = Minter(ISSUER, LocalSigner(), clock=FakeClock(1_700_000_000)).claims(
        registered, AUDIENCE, (), 60
    )
    assert claims["features"] == features
    # The registry document keeps the shape too.
    again = Client.from_document(json.loads(json.dumps(registered.to_document())))
    assert again.to_public_dict()["features"] == features


@pytest.mark.parametrize("bad", [{"": True}, {"x": float("nan")}, {"x": object()}, "beta", [1]])
def test_malformed_features_are_refused(bad: Any) -> None:
    with pytest.raises(ConfigError):
        client(bad)


def test_clients_add_features_json(tmp_path: Path) -> None:
    registry = tmp_path / "clients.json"
    result = clients_add(
        registry, "svc", "--audience", AUDIENCE, "--features-json", json.dumps(OBJECT), "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["features"] == OBJECT
    result = clients_add(registry, "x", "--audience", AUDIENCE, "--features-json", "5")
    assert result.exit_code != 0 and "list or object" in result.output
