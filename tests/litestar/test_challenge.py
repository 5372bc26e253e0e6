"""The RFC 6750 challenge and body builders: parameters stay inside their quotes whatever the
description holds, and a description that quotes the token is replaced."""

from __future__ import annotations

import json

from s2s.litestar._challenge import asgi_error, quote_param, www_authenticate
from s2s.verify.errors import InsufficientScope, InvalidRequest, InvalidToken, MissingToken


def test_missing_token_challenge_has_no_error_code() -> None:
    assert www_authenticate(MissingToken("x"), "api", "x") == 'Bearer realm="api"'


def test_invalid_request_challenge() -> None:
    challenge = www_authenticate(InvalidRequest("two"), "api", "two")
    assert challenge == 'Bearer realm="api", error="invalid_request", error_description="two"'


def test_quotes_backslashes_and_control_characters_cannot_break_out() -> None:
    nasty = 'bad" , error="none\\\r\nX-Injected: 1\x00é'
    status, headers, body = asgi_error(InvalidToken(nasty), realm='re"alm')
    challenge = dict(headers)[b"www-authenticate"].decode()
    assert status == 401
    assert challenge.count('"') == 6  # realm, error, error_description: three quoted values
    assert "\r" not in challenge and "\n" not in challenge and "\\" not in challenge
    assert json.loads(body)["error_description"] == quote_param(nasty)


def test_scope_parameter_lists_only_scope_tokens() -> None:
    exc = InsufficientScope("missing", scope='orders:read "x" orders:write')
    challenge = www_authenticate(exc, "api", "missing")
    assert challenge.endswith('scope="orders:read x orders:write"')


def test_a_description_quoting_the_token_is_replaced() -> None:
    token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl"
    for leaked in (token, token.split(".")[2]):
        _, headers, body = asgi_error(InvalidToken(f"could not parse {leaked}"), "api", token)
        everything = body.decode() + str(headers)
        assert leaked not in everything
        assert "the bearer token was not accepted" in everything


def test_refusals_are_not_cacheable() -> None:
    for exc in (MissingToken("x"), InvalidRequest("x"), InvalidToken("x"), InsufficientScope("x", scope="a")):
        _, headers, _ = asgi_error(exc, "api")
        assert dict(headers)[b"cache-control"] == b"no-store"
