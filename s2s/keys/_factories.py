"""Where new signing keys are made: locally or in AWS KMS, chosen once for a process.

:class:`KeyFactories` is the one place that decides it, for the issuer's key manager, ``s2s serve``
and ``s2s keys``: ``signer="local"`` (a private JWK in the keyset), ``"aws-kms"`` (KMS keys), or
``None`` to follow the keyset (KMS when it signs with KMS, local for a new keyset). It also cleans
up after KMS: keys made for a write that lost a compare-and-swap, and keys that left the JWKS, are
scheduled for deletion after the pending window. The window is validated here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from s2s._env import EnvReader
from s2s.errors import ConfigError
from s2s.keys._model import KeySet
from s2s.keys._rotation import KeyFactory, local_key_factory

if TYPE_CHECKING:
    from s2s.keys._kms import KmsKeyFactory

__all__ = ["SIGNERS", "KeyFactories"]

SIGNERS = ("local", "aws-kms")
# What KMS allows for ScheduleKeyDeletion's PendingWindowInDays.
_MIN_WINDOW, _MAX_WINDOW = 7, 30


class KeyFactories:
    """The key factory for each keyset, and the KMS clean-up that goes with it.

    ``kms`` replaces the KMS key factory (tests pass one with a moto client).
    """

    def __init__(
        self,
        signer: str | None = None,
        *,
        kms_deletion_window_days: int = _MAX_WINDOW,
        kms: KmsKeyFactory | None = None,
    ) -> None:
        self.validate(signer, kms_deletion_window_days)
        self.signer = signer
        self.kms_deletion_window_days = kms_deletion_window_days
        self._kms = kms

    @classmethod
    def from_env(
        cls,
        prefix: str = "S2S_",
        environ: Mapping[str, str] | None = None,
        *,
        signer: str | None = None,
        default: str | None = None,
    ) -> KeyFactories:
        """``signer`` if given, else ``S2S_SIGNER``, else ``default`` (``None``: follow the keyset), and
        ``S2S_KMS_DELETION_WINDOW_DAYS`` (7-30, default 30): what ``s2s keys`` uses."""
        env = EnvReader(prefix, environ)
        values = {
            "signer": signer or env.choice("SIGNER", SIGNERS, default),
            "kms_deletion_window_days": env.integer("KMS_DELETION_WINDOW_DAYS", _MAX_WINDOW),
        }
        return env.build(cls, values)

    @staticmethod
    def validate(signer: str | None, kms_deletion_window_days: int) -> None:
        """Refuse an unknown signer or a deletion window KMS would refuse (7-30 days)."""
        if signer is not None and signer not in SIGNERS:
            raise ConfigError(f"signer {signer!r} is not one of {', '.join(SIGNERS)}")
        window = kms_deletion_window_days
        if (
            isinstance(window, bool)
            or not isinstance(window, int)
            or not _MIN_WINDOW <= window <= _MAX_WINDOW
        ):
            raise ConfigError(
                f"kms_deletion_window_days must be a whole number of days between {_MIN_WINDOW} and "
                f"{_MAX_WINDOW} (what KMS allows), not {window!r}"
            )

    def __repr__(self) -> str:
        return (
            f"KeyFactories(signer={self.signer!r}, kms_deletion_window_days={self.kms_deletion_window_days})"
        )

    @property
    def kms(self) -> KmsKeyFactory:
        """The KMS key factory, made on first use (it needs the ``aws`` extra only then)."""
        if self._kms is None:
            from s2s.keys._kms import KmsKeyFactory  # noqa: PLC0415 - only KMS deployments need it

            self._kms = KmsKeyFactory(deletion_window_days=self.kms_deletion_window_days)
        return self._kms

    def uses_kms(self, keyset: KeySet) -> bool:
        """Whether new keys for ``keyset`` are made in KMS."""
        if self.signer is not None:
            return self.signer == "aws-kms"
        signer = keyset.current or keyset.next
        return signer is not None and signer.kms_key_id is not None

    def for_keyset(self, keyset: KeySet) -> KeyFactory:
        return self.kms if self.uses_kms(keyset) else local_key_factory

    def settle(self, saved: KeySet) -> None:
        """Schedule deletion of KMS keys made for attempts that ``saved`` (what won) does not hold."""
        if self._kms is not None and self._kms.created:
            self._kms.discard_unused(saved)

    def retire(self, before: KeySet, after: KeySet) -> list[str]:
        """After a save: schedule deletion of KMS keys that left the JWKS (retired or revoked).

        Returns the KMS key ids that could not be scheduled (logged by the factory; ``s2s keys
        prune`` schedules them again later)."""
        if not _has_kms_keys(before):
            return []
        return self.kms.schedule_deletion(self.kms.unpublished(before, after))

    def dropped(self, before: KeySet, after: KeySet) -> list[str]:
        """KMS key ids recorded in ``before`` and gone from ``after`` (pruned records)."""
        return self.kms.dropped(before, after) if _has_kms_keys(before) else []


def _has_kms_keys(keyset: KeySet) -> bool:
    return any(k.kms_key_id for k in keyset)
