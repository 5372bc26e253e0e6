"""Signing keys kept in AWS KMS: the private key never leaves KMS.

* :class:`KmsSigner` signs a JWS signing input with ``Sign`` (``MessageType=RAW``) and turns KMS's
  DER-encoded ECDSA signature into the JOSE ``r || s`` form (RFC 7518 §3.4). RAW with ES256 / RS256
  is the supported pair: moto 5.2 ignores ``MessageType=DIGEST`` (it hashes again) and uses the
  maximum PSS salt, so PS256 from it verifies nowhere else. RAW messages are limited to 4096 bytes
  by KMS; a JWS signing input is a few hundred.
* :class:`KmsKeyFactory` is a :data:`~s2s.keys._rotation.KeyFactory`: rotation calls it to create the
  ``next`` key ahead of time as a new KMS key (``ECC_NIST_P256`` -> ES256, ``RSA_2048`` -> RS256).
  The keyset records the KMS key id and the public JWK only.
* Deletion: a KMS key is scheduled for deletion (``ScheduleKeyDeletion`` with a 7-30 day pending
  window, never at once) as soon as a save of the keyset takes it out of the JWKS: when it retires
  (every token it may have signed has expired) or is revoked. The issuer's schedule and the CLI both
  do it; ``s2s keys prune`` schedules again whatever an earlier attempt failed to. The pending window
  gives an operator days to cancel. Keys the factory created for a keyset that then lost a
  compare-and-swap race (never published, never used) are scheduled the same way.
* Cost: every token is one ``Sign`` request. AWS meters asymmetric ``Sign`` calls against a
  per-account, per-region request quota (see Service Quotas), which bounds the issuance rate of
  all replicas together; token clients cache tokens, so that rate is rarely the limit.
* :class:`RoutingSigner` is what the issuer uses: per key, KMS when the record has a
  ``kms_key_id``, the local private JWK otherwise, so a keyset can move from one to the other by
  rotation.

Every KMS call (``Sign``, ``GetPublicKey``, ``CreateKey``, ``TagResource``, ``ScheduleKeyDeletion``)
goes through the one AWS seam, :meth:`s2s.aws.AwsService.call`: the same tight timeouts and retries
as every other AWS call (:class:`s2s.aws.AwsSettings`), and a circuit breaker, so a hung or failing
KMS costs the issuer a few timeouts and then fails fast (``CircuitOpen``) instead of one timeout per
token. boto3 is imported only when a client is first needed (:func:`s2s.aws.aws_client`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from s2s.aws import AwsError, AwsService, AwsSettings, CircuitBreaker
from s2s.errors import ConfigError, S2SError
from s2s.jose import b64url_encode, ecdsa_der_to_raw, encode_claims, encode_header, public_key_to_jwk
from s2s.keys._model import KeySet, KeyState, SigningKey, public_jwk_of, thumbprint
from s2s.keys._signing import LocalSigner, Signer

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_kms import KMSClient

__all__ = [
    "KMS_ALGS",
    "MAX_DELETION_WINDOW_DAYS",
    "MIN_DELETION_WINDOW_DAYS",
    "KmsError",
    "KmsKeyFactory",
    "KmsSigner",
    "KmsSpec",
    "RoutingSigner",
    "SigningUnavailable",
    "der_to_jose",
    "kms_public_jwk",
    "uses_kms",
]

log = logging.getLogger("s2s.keys.kms")

MIN_DELETION_WINDOW_DAYS = 7
MAX_DELETION_WINDOW_DAYS = 30
_MAX_RAW_MESSAGE = 4096


@dataclass(frozen=True, slots=True)
class KmsSpec:
    key_spec: str
    signing_algorithm: str
    # Bytes per signature half for ECDSA (RFC 7518 §3.4); 0 for RSA (the signature is used as is).
    coordinate_bytes: int


KMS_ALGS: Mapping[str, KmsSpec] = {
    "ES256": KmsSpec("ECC_NIST_P256", "ECDSA_SHA_256", 32),
    "RS256": KmsSpec("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256", 0),
}


class KmsError(S2SError):
    """AWS KMS refused or failed a request."""

    error = "kms_error"


class SigningUnavailable(S2SError):
    """The signing service could not sign now; try again later."""

    error = "signing_unavailable"


def _spec(alg: str) -> KmsSpec:
    try:
        return KMS_ALGS[alg]
    except KeyError:
        raise ConfigError(f"the KMS signer supports {', '.join(KMS_ALGS)}, not {alg!r}") from None


def der_to_jose(der: bytes, size: int = 32) -> bytes:
    """KMS's DER ECDSA signature as the fixed-width ``r || s`` that JWS uses (see
    :func:`s2s.jose.ecdsa_der_to_raw`); anything else is :class:`SigningUnavailable`."""
    try:
        return ecdsa_der_to_raw(der, size)
    except (ValueError, TypeError):
        raise SigningUnavailable("KMS returned a malformed ECDSA signature") from None


def _jwk_from_spki(der: bytes, alg: str) -> dict[str, Any]:
    try:
        public = load_der_public_key(der)
    except ValueError:
        raise KmsError("KMS returned a public key that is not SubjectPublicKeyInfo DER") from None
    spec = _spec(alg)
    if spec.coordinate_bytes:
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
            raise KmsError(f"the KMS key is not a P-256 key, so it cannot sign {alg}")
        return public_key_to_jwk(public)
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size < 2048:
        raise KmsError(f"the KMS key is not an RSA key of 2048 bits or more, so it cannot sign {alg}")
    return public_key_to_jwk(public)


class _Kms(AwsService):
    service = "kms"


def _service(kms: KMSClient | AwsService) -> AwsService:
    return kms if isinstance(kms, AwsService) else _Kms(kms)


def kms_public_jwk(kms: KMSClient | AwsService, key_id: str, alg: str) -> dict[str, Any]:
    """The public JWK of KMS key ``key_id`` (``GetPublicKey``), checked to suit ``alg``.

    ``kms`` is a boto3 KMS client or the :class:`~s2s.aws.AwsService` an adapter calls through.
    """
    try:
        response = _service(kms).call("get_public_key", KeyId=key_id)
    except AwsError as exc:
        raise KmsError(f"cannot read the public key of KMS key {key_id}: {exc.reason}") from None
    if response.get("KeyUsage") not in (None, "SIGN_VERIFY"):
        raise KmsError(f"KMS key {key_id} is not a SIGN_VERIFY key")
    return _jwk_from_spki(response["PublicKey"], alg)


class _Client:
    """KMS through the one AWS seam; the boto3 client is made on first use (so importing this
    module never needs boto3). ``client`` may be injected (tests); ``session``, ``settings`` and
    ``breaker`` as for :class:`~s2s.aws.AwsService`."""

    def __init__(
        self,
        client: KMSClient | None,
        region: str | None,
        session: boto3.Session | None = None,
        settings: AwsSettings | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.kms = _Kms(client, region=region, session=session, settings=settings, breaker=breaker)

    @property
    def client(self) -> KMSClient:
        client: KMSClient = self.kms.client
        return client


class KmsSigner(_Client):
    """Signs with the KMS key named by ``SigningKey.kms_key_id``.

    On first use of a key, its KMS public key is fetched and compared with the record's public JWK
    (then cached by kid and KMS key id): a keyset pointing at the wrong KMS key would otherwise
    sign tokens that its own kid never verifies. Any KMS failure is a :class:`SigningUnavailable`
    naming the AWS error code only; while the circuit breaker is open (KMS unreachable several
    times in a row) that is at once, with the code ``CircuitOpen``, and no request is sent.
    """

    def __init__(
        self,
        client: KMSClient | None = None,
        *,
        region: str | None = None,
        session: boto3.Session | None = None,
        settings: AwsSettings | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(client, region, session, settings, breaker)
        # (kid, KMS key id): a reloaded keyset may point the same kid at another KMS key.
        self._checked: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "KmsSigner()"

    def _check(self, key: SigningKey) -> None:
        assert key.kms_key_id is not None
        checked = (key.kid, key.kms_key_id)
        if checked in self._checked:
            return
        try:
            public = kms_public_jwk(self.kms, key.kms_key_id, key.alg)
        except KmsError as exc:
            raise SigningUnavailable(exc.description) from None
        if public != public_jwk_of(key.public_jwk):
            raise SigningUnavailable(
                f"KMS key {key.kms_key_id} does not hold the public key of kid {key.kid}"
            )
        with self._lock:
            if len(self._checked) > 256:
                self._checked.clear()
            self._checked.add(checked)

    def sign(self, key: SigningKey, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        if key.kms_key_id is None:
            raise ConfigError(f"key {key.kid} is not a KMS key")
        spec = _spec(key.alg)
        self._check(key)
        head = encode_header({**header, "alg": key.alg, "kid": key.kid})
        body = encode_claims(claims)
        signing_input = f"{head}.{body}".encode("ascii")
        if len(signing_input) > _MAX_RAW_MESSAGE:
            raise SigningUnavailable(f"the token is larger than the {_MAX_RAW_MESSAGE} bytes KMS signs raw")
        try:
            response = self.kms.call(
                "sign",
                KeyId=key.kms_key_id,
                Message=signing_input,
                MessageType="RAW",
                SigningAlgorithm=spec.signing_algorithm,
            )
        except AwsError as exc:
            raise SigningUnavailable(f"KMS could not sign with key {key.kms_key_id}: {exc.reason}") from None
        signature = bytes(response["Signature"])
        if spec.coordinate_bytes:
            signature = der_to_jose(signature, spec.coordinate_bytes)
        return f"{head}.{body}.{b64url_encode(signature)}"


class KmsKeyFactory(_Client):
    """Creates signing keys in KMS for rotation, and schedules the deletion of dropped ones.

    Use it as the ``new_key`` of :func:`~s2s.keys._rotation.rotate` and friends. It remembers the
    KMS keys it created so that :meth:`discard_unused` can clean up after a lost compare-and-swap.
    """

    def __init__(
        self,
        client: KMSClient | None = None,
        *,
        region: str | None = None,
        deletion_window_days: int = MAX_DELETION_WINDOW_DAYS,
        description: str = "s2s token signing key",
        session: boto3.Session | None = None,
        settings: AwsSettings | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(client, region, session, settings, breaker)
        if not MIN_DELETION_WINDOW_DAYS <= deletion_window_days <= MAX_DELETION_WINDOW_DAYS:
            raise ConfigError(
                f"the KMS deletion window must be {MIN_DELETION_WINDOW_DAYS}-{MAX_DELETION_WINDOW_DAYS} "
                f"days, not {deletion_window_days}"
            )
        self.deletion_window_days = deletion_window_days
        self.description = description
        self.created: list[str] = []

    def __repr__(self) -> str:
        return f"KmsKeyFactory(deletion_window_days={self.deletion_window_days})"

    def __call__(self, alg: str, now: float) -> SigningKey:
        spec = _spec(alg)
        try:
            meta = self.kms.call(
                "create_key",
                KeySpec=spec.key_spec,
                KeyUsage="SIGN_VERIFY",
                Description=f"{self.description} ({alg})",
                Tags=[
                    {"TagKey": "s2s:purpose", "TagValue": "jwt-signing"},
                    {"TagKey": "s2s:alg", "TagValue": alg},
                ],
            )["KeyMetadata"]
        except AwsError as exc:
            raise KmsError(f"cannot create a {spec.key_spec} KMS key: {exc.reason}") from None
        key_id = meta["KeyId"]
        self.created.append(key_id)
        public = kms_public_jwk(self.kms, key_id, alg)
        kid = thumbprint(public)
        try:
            self.kms.call("tag_resource", KeyId=key_id, Tags=[{"TagKey": "s2s:kid", "TagValue": kid}])
        except AwsError as exc:  # the tag is a convenience for operators, not needed to sign
            log.warning("could not tag KMS key %s with its kid: %s", key_id, exc.reason)
        log.info("created KMS key %s for %s key %s", key_id, alg, kid)
        return SigningKey(
            kid=kid, alg=alg, state=KeyState.NEXT, created_at=now, public_jwk=public, kms_key_id=key_id
        )

    def schedule_deletion(self, key_ids: Iterable[str]) -> list[str]:
        """Schedule each KMS key for deletion after the pending window; return the ones that failed.

        A key already pending deletion (or gone) counts as done.
        """
        failed: list[str] = []
        for key_id in key_ids:
            try:
                self.kms.call(
                    "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=self.deletion_window_days
                )
            except AwsError as exc:
                if exc.code in ("KMSInvalidStateException", "NotFoundException"):
                    continue
                log.warning("could not schedule deletion of KMS key %s: %s", key_id, exc.reason)
                failed.append(key_id)
                continue
            log.info("KMS key %s scheduled for deletion in %d days", key_id, self.deletion_window_days)
        return failed

    def unpublished(self, before: KeySet, after: KeySet) -> list[str]:
        """KMS key ids published in ``before`` and retired, revoked or gone in ``after``.

        Their tokens have expired (retired) or must not verify any more (revoked), so the keys are
        scheduled for deletion when they leave the JWKS; the pending window is the safety net.
        """
        still = {k.kms_key_id for k in after if k.kms_key_id and k.published}
        return [k.kms_key_id for k in before if k.kms_key_id and k.published and k.kms_key_id not in still]

    def dropped(self, before: KeySet, after: KeySet) -> list[str]:
        """KMS key ids recorded in ``before`` and no longer in ``after`` (e.g. pruned)."""
        kept = {k.kms_key_id for k in after if k.kms_key_id}
        return [k.kms_key_id for k in before if k.kms_key_id and k.kms_key_id not in kept]

    def discard_unused(self, saved: KeySet) -> list[str]:
        """Schedule deletion of keys this factory created that ``saved`` does not hold; return them."""
        held = {k.kms_key_id for k in saved if k.kms_key_id}
        unused = [key_id for key_id in self.created if key_id not in held]
        self.created = [key_id for key_id in self.created if key_id in held]
        if unused:
            self.schedule_deletion(unused)
        return unused


def uses_kms(keyset: KeySet) -> bool:
    """Whether the keyset signs with KMS (its current key, else its next key, is a KMS key)."""
    signer = keyset.current or keyset.next
    return signer is not None and signer.kms_key_id is not None


class RoutingSigner:
    """Signs each key where its private part lives: KMS for ``kms_key_id`` records, else locally."""

    def __init__(self, local: Signer | None = None, kms: Signer | None = None) -> None:
        self._local = local or LocalSigner()
        self._kms = kms
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "RoutingSigner()"

    def _kms_signer(self) -> Signer:
        if self._kms is None:
            with self._lock:
                if self._kms is None:
                    self._kms = KmsSigner()
        return self._kms

    def sign(self, key: SigningKey, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
        if key.kms_key_id is not None:
            return self._kms_signer().sign(key, header, claims)
        return self._local.sign(key, header, claims)
