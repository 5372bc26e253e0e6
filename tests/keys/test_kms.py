"""KMS signing against moto (in-process ``mock_aws``).

Why RAW + ES256/RS256 only: moto 5.2's KMS ``Sign`` ignores ``MessageType=DIGEST`` (it hashes the
digest again) and signs RSASSA-PSS with the maximum salt length, so PS256 signatures from moto
verify nowhere else. ``MessageType=RAW`` with ECDSA_SHA_256 / RSASSA_PKCS1_V1_5_SHA_256 behaves
the same in moto and in AWS, which is what these tests rely on.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet as JoseKeySet
from litestar.testing import TestClient
from moto import mock_aws

from s2s.aws import AwsSettings, CircuitBreaker, aws_client
from s2s.cli import main
from s2s.clock import FakeClock
from s2s.errors import ConfigError
from s2s.issuer import Client, InMemoryClientRegistry, IssuerSettings
from s2s.keys import (
    FileKeyStore,
    KeySet,
    KeyState,
    KmsKeyFactory,
    KmsSigner,
    RotationPolicy,
    RoutingSigner,
    SigningKey,
    SigningUnavailable,
    ensure_keys,
    generate_key,
    prune,
    rotate,
    thumbprint,
)
from s2s.keys._kms import der_to_jose, uses_kms
from s2s.keys._store import update_keyset
from s2s.litestar.issuer import create_issuer_app
from tests.issuer.helpers import AUDIENCE, FORM, ISSUER, SECRET, SECRET_HASH, assert_refused, basic
from tests.support import MemoryKeyStore

POLICY = RotationPolicy(rotate_every=0)
CLAIMS = {"iss": "https://issuer.test", "sub": "svc", "aud": "https://api.test", "exp": 4_000_000_000}
HEADER = {"typ": "at+jwt"}


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("kms", region_name="us-east-1")


def jwks_of(*keys: SigningKey) -> dict[str, Any]:
    return KeySet(keys).jwks() if all(k.published for k in keys) else {"keys": []}


def verify_both(token: str, key: SigningKey) -> None:
    """The token verifies with PyJWT and with joserfc, each given only the public JWKS."""
    jwks = {"keys": [key.public_jwk_entry()]}
    header = jwt.get_unverified_header(token)
    assert header["kid"] == key.kid and header["alg"] == key.alg and header["typ"] == "at+jwt"
    public = jwt.PyJWKSet.from_dict(jwks)[key.kid]
    assert jwt.decode(token, public.key, algorithms=[key.alg], audience=CLAIMS["aud"]) == CLAIMS
    decoded = jose_jwt.decode(token, JoseKeySet.import_key_set(jwks), algorithms=[key.alg])
    assert decoded.claims == CLAIMS


# -- DER -> JOSE ---------------------------------------------------------------------------------


def test_der_to_jose_matches_many_signatures() -> None:
    """Real signatures until some half has a leading zero byte (about 1 in 128 signatures)."""
    private = ec.generate_private_key(ec.SECP256R1())
    short_halves = checked = 0
    while (short_halves < 3 or checked < 300) and checked < 20_000:
        message = f"message {checked}".encode()
        der = private.sign(message, ec.ECDSA(hashes.SHA256()))
        jose = der_to_jose(der)
        assert len(jose) == 64
        r, s = int.from_bytes(jose[:32], "big"), int.from_bytes(jose[32:], "big")
        private.public_key().verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        short_halves += (r < 1 << 248) + (s < 1 << 248)
        checked += 1
    assert short_halves >= 3


@pytest.mark.parametrize(
    ("r", "s"),
    [
        (1, 2),  # both halves one byte in DER: 31 leading zero bytes each in JOSE
        (0x00FF << 232, 5),  # r's top byte is 0: 31-byte DER integer
        ((1 << 255) + 7, (1 << 255) + 9),  # top bits set: DER adds a 0x00, JOSE must drop it
        ((1 << 256) - 1, 1 << 200),
    ],
)
def test_der_to_jose_pads_and_strips_to_32_bytes(r: int, s: int) -> None:
    der = encode_dss_signature(r, s)
    jose = der_to_jose(der)
    assert len(jose) == 64
    assert jose == r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.mark.parametrize(
    "der",
    [
        b"",
        b"\x30\x00",
        b"garbage that is not DER",
        encode_dss_signature(1 << 256, 1),  # r too large for P-256
        encode_dss_signature(0, 1),
    ],
)
def test_der_to_jose_refuses_malformed_signatures(der: bytes) -> None:
    with pytest.raises(SigningUnavailable):
        der_to_jose(der)


# -- signing through KMS ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_kms_key_signs_tokens_that_verify_with_pyjwt_and_joserfc(kms: Any, alg: str) -> None:
    key = KmsKeyFactory(kms)(alg, 1_700_000_000.0)
    assert key.state is KeyState.NEXT and key.private_jwk is None and key.kms_key_id
    assert key.kid == thumbprint(key.public_jwk)
    meta = kms.describe_key(KeyId=key.kms_key_id)["KeyMetadata"]
    assert meta["KeyUsage"] == "SIGN_VERIFY"
    assert meta["KeySpec"] == {"ES256": "ECC_NIST_P256", "RS256": "RSA_2048"}[alg]
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key.kms_key_id)["Tags"]}
    assert tags["s2s:kid"] == key.kid and tags["s2s:alg"] == alg
    signer = KmsSigner(kms)
    for _ in range(3 if alg == "RS256" else 40):  # many ECDSA signatures: every DER shape converts
        verify_both(signer.sign(key, HEADER, CLAIMS), key)


def test_the_keyset_document_holds_kms_ids_and_public_keys_only(kms: Any) -> None:
    keyset = ensure_keys(KeySet(), 1_700_000_000.0, POLICY, KmsKeyFactory(kms))
    assert uses_kms(keyset)
    doc = keyset.to_document()
    for record in doc["keys"]:
        assert record["kms_key_id"] and "private_jwk" not in record
        assert set(record["public_jwk"]) == {"kty", "crv", "x", "y"}
    assert KeySet.from_document(json.loads(json.dumps(doc))) == keyset


def test_a_record_pointing_at_another_kms_key_refuses_to_sign(kms: Any) -> None:
    factory = KmsKeyFactory(kms)
    a, b = factory("ES256", 0.0), factory("ES256", 0.0)
    forged = SigningKey(
        kid=a.kid,
        alg="ES256",
        state=KeyState.CURRENT,
        created_at=0.0,
        public_jwk=a.public_jwk,
        kms_key_id=b.kms_key_id,
    )
    with pytest.raises(SigningUnavailable, match="does not hold the public key"):
        KmsSigner(kms).sign(forged, HEADER, CLAIMS)
    # Also once the genuine record was checked: a reloaded keyset may repoint the same kid.
    signer = KmsSigner(kms)
    verify_both(signer.sign(a, HEADER, CLAIMS), a)
    with pytest.raises(SigningUnavailable, match="does not hold the public key"):
        signer.sign(forged, HEADER, CLAIMS)


@pytest.mark.parametrize("code", ["DisabledException", "KMSInvalidStateException", "AccessDeniedException"])
def test_kms_failures_are_typed_and_name_no_message(
    kms: Any, caplog: pytest.LogCaptureFixture, code: str
) -> None:
    key = KmsKeyFactory(kms)("ES256", 0.0)
    signer = KmsSigner(kms)
    verify_both(signer.sign(key, HEADER, CLAIMS), key)  # public key checked and cached
    secret_claim = secrets.token_urlsafe(16)
    # moto 5.2 keeps signing with disabled keys and keys pending deletion, so AWS's refusal is stubbed.
    with Stubber(kms) as stub:
        stub.add_client_error("sign", service_error_code=code, service_message=f"echo {secret_claim}")
        with pytest.raises(SigningUnavailable) as raised:
            signer.sign(key, HEADER, {**CLAIMS, "secret": secret_claim})
    assert raised.value.error == "signing_unavailable"
    assert code in raised.value.description
    assert secret_claim not in str(raised.value) and secret_claim not in caplog.text


def test_an_unknown_kms_key_is_a_typed_error(kms: Any) -> None:
    key = KmsKeyFactory(kms)("ES256", 0.0)
    missing = SigningKey(
        kid=key.kid,
        alg="ES256",
        state=KeyState.CURRENT,
        created_at=0.0,
        public_jwk=key.public_jwk,
        kms_key_id="11111111-2222-3333-4444-555555555555",
    )
    with pytest.raises(SigningUnavailable, match="NotFoundException"):
        KmsSigner(kms).sign(missing, HEADER, CLAIMS)


def test_only_es256_and_rs256_are_offered(kms: Any) -> None:
    with pytest.raises(ConfigError, match="ES256, RS256"):
        KmsKeyFactory(kms)("PS256", 0.0)
    with pytest.raises(ConfigError, match="7-30"):
        KmsKeyFactory(kms, deletion_window_days=3)


def test_routing_signer_picks_kms_or_local_per_key(kms: Any) -> None:
    kms_key = KmsKeyFactory(kms)("ES256", 0.0)
    local_key = generate_key("ES256", now=0.0)
    routing = RoutingSigner(kms=KmsSigner(kms))
    verify_both(routing.sign(kms_key, HEADER, CLAIMS), kms_key)
    verify_both(routing.sign(local_key, HEADER, CLAIMS), local_key)
    # Each token verifies only with its own key: the routing did not mix them up.
    token = routing.sign(kms_key, HEADER, CLAIMS)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            token,
            jwt.PyJWK({**local_key.public_jwk_entry()}).key,
            algorithms=["ES256"],
            audience=CLAIMS["aud"],
        )


# -- the one AWS seam: timeouts, retries and the circuit breaker ------------------------------------


class KmsOutage:
    """Makes the KMS client's requests time out (as a hung KMS endpoint does) while ``down``.

    It hooks the request as it is about to be sent, before moto answers it: botocore sees a read
    timeout, exactly what a stopped endpoint gives after ``read_timeout``."""

    def __init__(self, client: Any) -> None:
        self.down = False
        self.sent: list[str] = []
        client.meta.events.register_first("before-send.kms", self._send)

    def _send(self, request: Any, **_: Any) -> None:
        self.sent.append(request.headers.get("X-Amz-Target", b"").decode().rsplit(".", 1)[-1])
        if self.down:
            raise ReadTimeoutError(endpoint_url=request.url)


@pytest.fixture
def kms_one_attempt(kms: Any) -> Any:
    """A KMS client as s2s builds it (its timeouts and retry settings), one attempt per call."""
    return aws_client("kms", region="us-east-1", settings=AwsSettings(max_attempts=1))


def test_kms_sign_goes_through_the_breaker_fails_fast_and_recovers(
    kms_one_attempt: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = kms_one_attempt
    key = KmsKeyFactory(client)("ES256", 0.0)
    clock = FakeClock(1_000.0)
    signer = KmsSigner(client, breaker=CircuitBreaker(threshold=3, cooldown=5.0, clock=clock))
    outage = KmsOutage(client)
    verify_both(signer.sign(key, HEADER, CLAIMS), key)  # GetPublicKey (checked once) and Sign
    assert outage.sent == ["GetPublicKey", "Sign"]

    outage.down = True
    for _ in range(3):  # KMS unreachable: each call is tried, and fails typed
        with pytest.raises(SigningUnavailable, match="ReadTimeoutError"):
            signer.sign(key, HEADER, CLAIMS)
    assert outage.sent.count("Sign") == 4
    # The breaker is open: the call fails at once with the same typed error, nothing is sent.
    for _ in range(5):
        with pytest.raises(SigningUnavailable, match="CircuitOpen") as raised:
            signer.sign(key, HEADER, CLAIMS)
        assert raised.value.error == "signing_unavailable"
    assert outage.sent.count("Sign") == 4
    assert "failing fast" in caplog.text

    outage.down = False  # KMS answers again; the breaker still waits out its cooldown
    with pytest.raises(SigningUnavailable, match="CircuitOpen"):
        signer.sign(key, HEADER, CLAIMS)
    assert outage.sent.count("Sign") == 4
    clock.advance(5.0)
    verify_both(signer.sign(key, HEADER, CLAIMS), key)  # the trial call succeeds: closed again
    for _ in range(3):
        verify_both(signer.sign(key, HEADER, CLAIMS), key)
    assert outage.sent.count("Sign") == 8
    assert not signer.kms.breaker.is_open
    assert "circuit breaker closed" in caplog.text


def test_a_failed_trial_opens_the_kms_breaker_again(kms_one_attempt: Any) -> None:
    client = kms_one_attempt
    key = KmsKeyFactory(client)("ES256", 0.0)
    clock = FakeClock(1_000.0)
    signer = KmsSigner(client, breaker=CircuitBreaker(threshold=2, cooldown=3.0, clock=clock))
    verify_both(signer.sign(key, HEADER, CLAIMS), key)
    outage = KmsOutage(client)
    outage.down = True
    for _ in range(2):
        with pytest.raises(SigningUnavailable, match="ReadTimeoutError"):
            signer.sign(key, HEADER, CLAIMS)
    clock.advance(3.0)
    with pytest.raises(SigningUnavailable, match="ReadTimeoutError"):  # the trial: still down
        signer.sign(key, HEADER, CLAIMS)
    with pytest.raises(SigningUnavailable, match="CircuitOpen"):  # open again at once
        signer.sign(key, HEADER, CLAIMS)
    assert outage.sent == ["Sign"] * 3


def test_a_hung_kms_answers_503_temporarily_unavailable_fast_then_recovers(
    kms_one_attempt: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the token endpoint: after repeated KMS timeouts, token requests get 503
    temporarily_unavailable + Retry-After without a KMS request; tokens again once KMS answers."""
    caplog.set_level(logging.INFO)
    client = kms_one_attempt
    policy = RotationPolicy(rotate_every=0)
    clock = FakeClock(time.time())
    store = MemoryKeyStore()
    update_keyset(store, lambda ks: ensure_keys(ks, clock.now(), policy, KmsKeyFactory(client)))
    registry = InMemoryClientRegistry(
        [Client(client_id="svc", audiences=(AUDIENCE,), scopes=("orders:read",), secret_hash=SECRET_HASH)]
    )
    breaker = CircuitBreaker(threshold=3, cooldown=30.0, clock=clock)
    signer = RoutingSigner(kms=KmsSigner(client, breaker=breaker))
    outage = KmsOutage(client)
    settings = IssuerSettings(issuer=ISSUER, rotation=policy, run_rotation=False)
    app = create_issuer_app(
        settings, store=store, registry=registry, clock=clock, signer=signer, reload_loop=False
    )
    form = {"grant_type": "client_credentials", "audience": AUDIENCE}
    headers = {"authorization": basic("svc", SECRET), "content-type": FORM}
    with TestClient(app, base_url=ISSUER) as tc:
        assert tc.post("/oauth2/token", data=form, headers=headers).status_code == 200
        outage.down = True
        for _ in range(6):
            response = tc.post("/oauth2/token", data=form, headers=headers)
            body = assert_refused(response, 503, "temporarily_unavailable", caplog, SECRET)
            assert body["error_description"] == "signing is temporarily unavailable"
            assert int(response.headers["retry-after"]) > 0
            assert "kms" not in response.text.lower() and "Circuit" not in response.text
        assert outage.sent.count("Sign") == 1 + 3  # the three that opened the breaker, then none
        assert "CircuitOpen" in caplog.text  # the operator sees why
        outage.down = False
        clock.advance(30.0)
        response = tc.post("/oauth2/token", data=form, headers=headers)
        assert response.status_code == 200, response.text
        jwks = tc.get("/.well-known/jwks.json").json()
        key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(response.json()["access_token"])["kid"]]
        jwt.decode(
            response.json()["access_token"], key.key, algorithms=["ES256"], audience=AUDIENCE, leeway=60
        )


# -- rotation and deletion -------------------------------------------------------------------------


def test_rotation_creates_the_next_kms_key_ahead_and_prune_schedules_deletion(kms: Any) -> None:
    policy = RotationPolicy(rotate_every=0, retention=3600)
    factory = KmsKeyFactory(kms, deletion_window_days=7)
    now = 1_700_000_000.0
    keyset = ensure_keys(KeySet(), now, policy, factory)
    first, second = keyset.current, keyset.next
    assert first is not None and second is not None and second.kms_key_id
    now += policy.publish_lead
    keyset = rotate(keyset, now, policy, new_key=factory)
    assert keyset.current == second.with_state(KeyState.CURRENT, activated_at=now)
    third = keyset.next
    assert third is not None and third.kms_key_id not in (first.kms_key_id, second.kms_key_id)
    assert third.created_at == now  # made now, published ahead of its first signature
    state = kms.describe_key(KeyId=third.kms_key_id)["KeyMetadata"]["KeyState"]
    assert state == "Enabled"
    # The demoted key retires after previous_keep and is pruned after retention.
    now += policy.previous_keep
    keyset = rotate(keyset, now + policy.publish_lead, policy, new_key=factory)
    assert keyset.get(first.kid).state is KeyState.RETIRED
    assert kms.describe_key(KeyId=first.kms_key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    before = keyset
    keyset = prune(keyset, now + policy.publish_lead + policy.retention, policy)
    dropped = factory.dropped(before, keyset)
    assert dropped == [first.kms_key_id]
    started = datetime.datetime.now(datetime.UTC)
    assert factory.schedule_deletion(dropped) == []
    meta = kms.describe_key(KeyId=first.kms_key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    window = meta["DeletionDate"] - started
    assert datetime.timedelta(days=6, hours=23) < window < datetime.timedelta(days=7, hours=1)
    # Scheduling again (a rerun) is harmless.
    assert factory.schedule_deletion(dropped) == []


def test_keys_made_for_a_lost_race_are_scheduled_for_deletion(kms: Any) -> None:
    factory = KmsKeyFactory(kms, deletion_window_days=10)
    winner = ensure_keys(KeySet(), 0.0, POLICY, factory)
    loser = ensure_keys(KeySet(), 0.0, POLICY, factory)  # built, then lost the compare-and-swap
    unused = factory.discard_unused(winner)
    assert sorted(unused) == sorted(k.kms_key_id for k in loser)
    for key in loser:
        assert kms.describe_key(KeyId=key.kms_key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    for key in winner:
        assert kms.describe_key(KeyId=key.kms_key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert factory.created == [k.kms_key_id for k in winner]


# -- the CLI with --signer aws-kms -----------------------------------------------------------------


class Cli:
    def __init__(self, directory: Path, clock: FakeClock) -> None:
        self.store = f"file://{directory}"
        self.directory = directory
        self.clock = clock
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        result = self.runner.invoke(main, [*args, "--store", self.store], obj={"clock": self.clock})
        if isinstance(result.exception, Exception) and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def keyset(self) -> KeySet:
        return FileKeyStore(self.directory).load()[0]


@pytest.fixture
def cli(kms: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    for name in list(os.environ):
        if name.startswith("S2S_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("S2S_ROTATE_EVERY", "0")
    monkeypatch.setenv("S2S_RETENTION", "3600")
    monkeypatch.setenv("S2S_KMS_DELETION_WINDOW_DAYS", "14")
    return Cli(tmp_path / "keys", FakeClock(1_700_000_000.0))


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_cli_lifecycle_with_kms_keys(cli: Cli, kms: Any, alg: str) -> None:
    policy = RotationPolicy.from_env()
    assert cli("keys", "init", "--signer", "aws-kms", "--alg", alg).exit_code == 0
    keyset = cli.keyset()
    assert all(k.kms_key_id and k.private_jwk is None and k.alg == alg for k in keyset)
    first = keyset.current
    assert first is not None

    listed = json.loads(cli("keys", "list", "--json").stdout)
    assert {k["kms_key_id"] for k in listed["keys"]} == {k.kms_key_id for k in keyset}

    # rotate follows the keyset: the next key is a new KMS key, made ahead of time
    cli.clock.advance(policy.publish_lead)
    assert cli("keys", "rotate").exit_code == 0
    keyset = cli.keyset()
    assert len(keyset) == 3 and all(k.kms_key_id for k in keyset)
    assert len({k.kms_key_id for k in keyset}) == 3

    # revoke the current key: next is promoted, a new next KMS key is made
    current = keyset.current
    assert current is not None
    assert cli("keys", "revoke", "--kid", current.kid).exit_code == 0
    keyset = cli.keyset()
    assert all(k.kms_key_id for k in keyset) and len(keyset) == 4

    # retire the first key, then prune: its KMS key is scheduled for deletion, not deleted
    cli.clock.advance(policy.previous_keep + policy.publish_lead)
    assert cli("keys", "rotate").exit_code == 0
    assert cli.keyset().get(first.kid).state is KeyState.RETIRED
    cli.clock.advance(policy.retention)
    started = datetime.datetime.now(datetime.UTC)
    result = cli("keys", "prune", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert first.kid in data["pruned"] and current.kid in data["pruned"]
    assert set(data["kms_deletion_scheduled"]) == {first.kms_key_id, current.kms_key_id}
    assert data["kms_deletion_window_days"] == 14
    for key_id in data["kms_deletion_scheduled"]:
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert meta["KeyState"] == "PendingDeletion"
        assert datetime.timedelta(days=13, hours=23) < meta["DeletionDate"] - started
        assert meta["DeletionDate"] - started < datetime.timedelta(days=14, hours=1)
    # Every KMS key still in the keyset is usable; the CLI never printed a private member.
    for key in cli.keyset():
        assert kms.describe_key(KeyId=key.kms_key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_cli_refuses_kms_with_an_unsupported_alg(cli: Cli) -> None:
    result = cli("keys", "init", "--signer", "aws-kms", "--alg", "PS256")
    assert result.exit_code != 0
    assert "supports --alg ES256 or RS256" in result.stderr
    assert not cli.keyset().keys


def test_cli_init_takes_the_signer_from_s2s_signer(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2S_SIGNER", "aws-kms")
    assert cli("keys", "init").exit_code == 0
    assert all(k.kms_key_id and k.private_jwk is None for k in cli.keyset())


def test_keys_leaving_the_jwks_are_scheduled_for_deletion_at_once(cli: Cli, kms: Any) -> None:
    """Issue 5: a retired (or revoked) KMS key is scheduled for deletion with a pending window."""
    policy = RotationPolicy.from_env()
    assert cli("keys", "init", "--signer", "aws-kms").exit_code == 0
    first = cli.keyset().current
    assert first is not None and first.kms_key_id
    cli.clock.advance(policy.publish_lead)
    assert cli("keys", "rotate").exit_code == 0  # first -> previous: still published, still usable
    assert kms.describe_key(KeyId=first.kms_key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    cli.clock.advance(policy.previous_keep + policy.publish_lead)
    assert cli("keys", "rotate").exit_code == 0  # first retires here
    assert cli.keyset().get(first.kid).state is KeyState.RETIRED
    meta = kms.describe_key(KeyId=first.kms_key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    # revoking the signer takes its KMS key the same way
    current = cli.keyset().current
    assert current is not None and current.kms_key_id
    assert cli("keys", "revoke", "--kid", current.kid).exit_code == 0
    assert kms.describe_key(KeyId=current.kms_key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    # the signing keys are untouched
    for key in cli.keyset().in_state(KeyState.CURRENT, KeyState.NEXT):
        assert kms.describe_key(KeyId=key.kms_key_id)["KeyMetadata"]["KeyState"] == "Enabled"
