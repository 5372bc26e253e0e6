"""The token endpoint's hand-written fast paths agree with the general code they replace."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

import pytest

from s2s.clock import FakeClock
from s2s.issuer import (
    Client,
    InMemoryClientRegistry,
    InvalidTokenRequest,
    Minter,
    SecretVerifier,
    new_client,
    parse_form,
)
from s2s.issuer._form import MAX_FIELDS
from s2s.issuer._token import _token_body
from s2s.keys import LocalSigner
from s2s.litestar.issuer import IssuerRuntime
from tests.issuer.helpers import AUDIENCE, LEGACY_HASH, SECRET, basic

FORM = "application/x-www-form-urlencoded"


def reference_parse(body: bytes) -> dict[str, list[str]] | None:
    """The former parse_form: parse_qsl, strict UTF-8, blank values dropped; None = refused."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        return None
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        if value:
            form.setdefault(name, []).append(value)
    return form


def fast_parse(body: bytes) -> dict[str, list[str]] | None:
    try:
        return parse_form(body, FORM)
    except InvalidTokenRequest:
        return None


ALPHABET = [
    "a", "b", "grant_type", "scope", "=", "=", "&", "&", "+", "%", "%2", "%20", "%2B", "%26", "%3D",
    "%41", "%c3%a9", "%C3", "%A9", "%FF", "%E2%82%AC", "%zz", "%%", "é", "€", " ", ";", "\x00", "~",
]  # fmt: skip


def random_body(rng: random.Random) -> bytes:
    text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24)))
    if rng.random() < 0.1:
        text = "&".join(["x=1"] * rng.randint(MAX_FIELDS - 2, MAX_FIELDS + 2))
    raw = text.encode("utf-8")
    if rng.random() < 0.05:
        raw += b"\xff"  # not UTF-8 before any percent-decoding
    return raw


def test_fast_parser_agrees_with_parse_qsl_on_a_fuzzed_corpus() -> None:
    rng = random.Random(20261123)
    refused = accepted = 0
    for _ in range(20_000):
        body = random_body(rng)
        expected = reference_parse(body)
        assert fast_parse(body) == expected, body
        if expected is None:
            refused += 1
        else:
            accepted += 1
    assert refused > 500 and accepted > 5000  # the corpus exercises both outcomes


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"grant_type=client_credentials", {"grant_type": ["client_credentials"]}),
        (b"a=1&a=2&&b=&c", {"a": ["1", "2"]}),
        (b"audience=https%3A%2F%2Fapi.test&scope=a+b", {"audience": ["https://api.test"], "scope": ["a b"]}),
        (b"x=%zz%2", {"x": ["%zz%2"]}),  # invalid escapes stay literal, as parse_qsl leaves them
        (b"%C3%A9=%E2%82%AC", {"\u00e9": ["\u20ac"]}),
        (b"x=%FF", None),  # percent-decodes to invalid UTF-8
        (b"%FF=", None),  # also in the name of a dropped blank parameter
        ("&".join(["x=1"] * MAX_FIELDS).encode(), {"x": ["1"] * MAX_FIELDS}),
        ("&".join(["x=1"] * (MAX_FIELDS + 1)).encode(), None),
        (b"", {}),
    ],
)
def test_fast_parser_cases(body: bytes, expected: dict[str, list[str]] | None) -> None:
    assert fast_parse(body) == expected == reference_parse(body)


@pytest.mark.parametrize("scope", ["", "orders:read", "a b c", 'we"ird\\ones', "\u00e9t\u00e9"])
@pytest.mark.parametrize("expires_in", [1, 300])
def test_token_body_is_what_json_dumps_gives(scope: str, expires_in: int) -> None:
    token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    body: dict[str, object] = {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
    if scope:
        body["scope"] = scope
    assert _token_body(token, expires_in, scope) == json.dumps(body, separators=(",", ":")).encode()


def test_jti_is_fresh_random_base64url(clock: FakeClock) -> None:
    client, _ = new_client("svc", audiences=["https://api.test"], scopes=["a"], now=clock.now())
    minter = Minter("https://issuer.test", LocalSigner(), clock=clock)
    jtis = {str(minter.claims(client, "https://api.test", ("a",), 300)["jti"]) for _ in range(500)}
    assert len(jtis) == 500
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", jti) for jti in jtis)


class CountingRunSync:
    """A run_sync that records how often the endpoint leaves the event loop."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, fn: Callable[[], bool]) -> bool:
        self.calls += 1
        return fn()


async def three_tokens_then_a_wrong_secret(runtime: IssuerRuntime) -> list[int]:
    """run_sync calls after three right secrets, and after one wrong secret more."""
    runtime.keys.refresh()
    endpoint = runtime.endpoint
    run_sync = CountingRunSync()
    body = urlencode({"grant_type": "client_credentials", "scope": "orders:read"}).encode()
    for _ in range(3):
        out = await endpoint.process(body, FORM, basic("svc", SECRET), run_sync)
        assert out.status == 200
        assert json.loads(out.body)["scope"] == "orders:read"
    calls = [run_sync.calls]
    refused = await endpoint.process(body, FORM, basic("svc", "wrong-secret"), run_sync)
    assert refused.status == 401
    assert b"wrong-secret" not in refused.body and SECRET.encode() not in refused.body
    return [*calls, run_sync.calls]


@pytest.mark.anyio
async def test_a_fast_hash_never_leaves_the_event_loop(runtime: IssuerRuntime) -> None:
    """Fast (sha256) hashes are checked inline, right or wrong: no worker thread, no queue."""
    assert await three_tokens_then_a_wrong_secret(runtime) == [0, 0]


@pytest.mark.anyio
async def test_a_cached_legacy_secret_never_leaves_the_event_loop(
    runtime: IssuerRuntime, registry: InMemoryClientRegistry
) -> None:
    """Only the first request runs the slow scrypt hash (in run_sync); the rest are answered inline;
    a failure is never cached."""
    registry.put(
        Client(client_id="svc", audiences=(AUDIENCE,), scopes=("orders:read",), secret_hash=LEGACY_HASH)
    )
    assert await three_tokens_then_a_wrong_secret(runtime) == [1, 2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_secret_cache_keys_depend_on_client_hash_and_secret(clock: FakeClock) -> None:
    verifier = SecretVerifier(clock)
    one, secret = new_client("one", audiences=["https://api.test"], now=clock.now())
    assert secret is not None
    other, _ = new_client("two", audiences=["https://api.test"], now=clock.now())
    assert verifier.verify_slow(one, secret)
    assert verifier.cached(one, secret)
    assert not verifier.cached(one, secret + "x")
    assert not verifier.cached(other, secret)
    assert InMemoryClientRegistry([one]).get("one") is one


@pytest.mark.anyio
async def test_remembered_bodies_never_hold_credentials_and_keep_every_check(runtime: IssuerRuntime) -> None:
    runtime.keys.refresh()
    endpoint = runtime.endpoint
    run_sync = CountingRunSync()
    plain = urlencode({"grant_type": "client_credentials", "scope": "orders:read"}).encode()
    for _ in range(2):
        assert (await endpoint.process(plain, FORM, basic("svc", SECRET), run_sync)).status == 200
    # The same bytes under another content type, or without credentials, are still refused.
    wrong_type = await endpoint.process(plain, "text/plain", basic("svc", SECRET), run_sync)
    assert wrong_type.status == 400 and json.loads(wrong_type.body)["error"] == "invalid_request"
    assert (await endpoint.process(plain, FORM, None, run_sync)).status == 401
    assert (await endpoint.process(plain, FORM, basic("svc", "nope"), run_sync)).status == 401
    # A client_secret_post body works, and is never remembered: it carries the secret.
    post = urlencode(
        {"grant_type": "client_credentials", "client_id": "svc", "client_secret": SECRET}
    ).encode()
    for _ in range(2):
        assert (await endpoint.process(post, FORM, None, run_sync)).status == 200
    remembered = list(vars(vars(endpoint)["_params"])["_bodies"])
    assert remembered == [plain]
    assert all(SECRET.encode() not in body for body in remembered)
    # A repeated parameter is refused every time, not remembered as a success.
    repeated = plain + b"&scope=orders:write"
    for _ in range(2):
        out = await endpoint.process(repeated, FORM, basic("svc", SECRET), run_sync)
        assert out.status == 400 and b"repeated" in out.body
