"""The default token lifetime lets MSAL's cache and s2s's TokenClient reuse a token for most of its
life, and stays within the rotation policy's ceiling (so key timings cover every token)."""

from __future__ import annotations

from s2s.client import RefreshPolicy
from s2s.issuer import IssuerSettings

__all__: list[str] = []

# MSAL (Python and Node) counts a token with less than 5 minutes left as expired.
MSAL_EXPIRY_MARGIN = 300


def test_msal_and_token_client_reuse_default_tokens_for_most_of_their_life() -> None:
    settings = IssuerSettings.from_env(environ={})
    ttl = settings.token_ttl
    assert (ttl - MSAL_EXPIRY_MARGIN) / ttl >= 0.8, ttl
    assert (ttl - RefreshPolicy().margin(ttl)) / ttl >= 0.8, ttl


def test_the_default_lifetime_is_within_the_rotation_ceiling() -> None:
    settings = IssuerSettings.from_env(environ={})
    assert settings.token_ttl <= settings.max_token_ttl
    # A demoted key stays published until every token it could have signed has expired.
    assert settings.rotation.previous_keep >= settings.max_token_ttl + settings.poll_interval
