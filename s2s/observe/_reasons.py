"""Bounded reason codes for client-authentication failures (metric labels, span attributes)."""

from __future__ import annotations

__all__ = ["reason_code"]


def reason_code(method: str, reason: str) -> str:
    """A bounded label for a client-authentication failure (the full reason goes to the log)."""
    text = reason.lower()
    for needle, code in (
        ("unknown client", "unknown_client"),
        ("wrong secret", "wrong_secret"),
        ("no secret", "no_secret"),
        ("no registered keys", "no_keys"),
        ("not registered for", "wrong_method"),
        ("already used", "replayed"),
        ("replay", "replayed"),
        ("expired", "expired"),
        ("signature", "bad_signature"),
        ("untrusted issuer", "untrusted_issuer"),
        ("another trust domain", "untrusted_issuer"),
    ):
        if needle in text:
            return code
    return "bad_assertion" if method in ("private_key_jwt", "federated") else "malformed"
