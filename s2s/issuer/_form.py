"""Reading a token request: the form body and the client credentials it presents.

Strict and framework-free: anything that is not a well-formed ``application/x-www-form-urlencoded``
request with exactly one client authentication method is refused with an :class:`OAuthError`
(``invalid_request`` or ``invalid_client``). Nothing here looks a client up or checks a credential:
that is the endpoint's job (:mod:`s2s.issuer._token`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from urllib.parse import unquote, unquote_plus

from s2s.issuer._assertion import InvalidAssertion, assertion_subject
from s2s.issuer.errors import InvalidClient, InvalidTokenRequest, UnsupportedGrantType
from s2s.oauth import FORM_TYPE, JWT_BEARER_ASSERTION_TYPE

__all__ = [
    "MAX_FIELDS",
    "MAX_VALUE",
    "FormReader",
    "basic_credentials",
    "parse_form",
    "presented_credentials",
    "single_values",
]

MAX_FIELDS = 32
MAX_VALUE = 8192
# Parameters that never carry a credential: a body made only of these may be remembered.
_PLAIN_PARAMS = frozenset({"grant_type", "audience", "resource", "scope", "client_id"})
_MAX_REMEMBERED_BODY = 1024
_MAX_REMEMBERED_BODIES = 256


def parse_form(body: bytes, content_type: str | None, *, max_bytes: int = 16 * 1024) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body, strictly: anything else is ``invalid_request``.

    Empty values are dropped (RFC 6749 §3.1: a parameter without a value is omitted).
    """
    media, _, params = (content_type or "").partition(";")
    if media.strip().lower() != FORM_TYPE:
        raise InvalidTokenRequest(f"the token request must be {FORM_TYPE}")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise InvalidTokenRequest("the token request must be UTF-8")
    if len(body) > max_bytes:
        raise InvalidTokenRequest("the token request is too large")
    try:
        text = body.decode("utf-8")
        # parse_qsl's own limit, counted the same way: 1 + the number of separators.
        if text and text.count("&") >= MAX_FIELDS:
            raise ValueError
        form: dict[str, list[str]] = {}
        for piece in text.split("&"):
            if not piece:
                continue
            raw_name, _, raw_value = piece.partition("=")
            name = _form_unquote(raw_name)  # decoded even for a dropped empty value, as before
            if raw_value:
                form.setdefault(name, []).append(_form_unquote(raw_value))
    except (UnicodeDecodeError, ValueError):
        raise InvalidTokenRequest("the token request body is not valid form data") from None
    return form


def _form_unquote(text: str) -> str:
    """One name or value, decoded exactly as ``parse_qsl(..., errors="strict")`` does.

    The common case (no ``+`` and no ``%``) returns the text itself without a call into
    :mod:`urllib.parse`; invalid UTF-8 after percent-decoding raises ``UnicodeDecodeError``.
    """
    if "+" in text:
        text = text.replace("+", " ")
    if "%" in text:
        text = unquote(text, errors="strict")
    return text


def single_values(form: Mapping[str, list[str]]) -> dict[str, str]:
    """Each parameter's one value: a repeated or over-long parameter is ``invalid_request``."""
    params: dict[str, str] = {}
    for name, values in form.items():
        if len(values) > 1:
            raise InvalidTokenRequest(
                f"parameter {name!r} is repeated" if name.isidentifier() else "a parameter is repeated"
            )
        if values:
            if len(values[0]) > MAX_VALUE:
                raise InvalidTokenRequest("a parameter is too long")
            params[name] = values[0]
    return params


class FormReader:
    """``single_values(parse_form(...))``, remembered for bodies that carry no credentials.

    A busy client sends the same few bodies (grant type, audience, scope) again and again; the
    credentials travel in the Authorization header. A body is remembered only when every parameter
    is one of :data:`_PLAIN_PARAMS` (so no secret or assertion is ever kept), with the content type
    it came with; the table is small and emptied when full. The result is shared between requests
    and never mutated.
    """

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bodies: dict[bytes, tuple[str | None, dict[str, str]]] = {}

    def __call__(self, body: bytes, content_type: str | None) -> dict[str, str]:
        hit = self._bodies.get(body)
        if hit is not None and hit[0] == content_type:
            return hit[1]
        params = single_values(parse_form(body, content_type, max_bytes=self._max_bytes))
        if len(body) <= _MAX_REMEMBERED_BODY and _PLAIN_PARAMS.issuperset(params):
            if len(self._bodies) >= _MAX_REMEMBERED_BODIES:
                self._bodies.clear()
            self._bodies[body] = (content_type, params)
        return params


def basic_credentials(header: str) -> tuple[str, str]:
    """``(client_id, secret)`` from an ``Authorization: Basic`` value (RFC 6749 §2.3.1)."""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient(
            "unsupported authentication scheme: use Basic, client_secret_post or private_key_jwt"
        )
    credentials = credentials.strip()
    try:
        if len(credentials) > 4 * MAX_VALUE:
            raise ValueError
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep:
            raise ValueError
        # RFC 6749 §2.3.1: both parts are form-urlencoded before being joined.
        client_id = unquote_plus(raw_id, errors="strict")
        secret = unquote_plus(raw_secret, errors="strict")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidClient("malformed Basic credentials") from None
    if not client_id or not secret:
        raise InvalidClient("malformed Basic credentials")
    return client_id, secret


def presented_credentials(
    params: Mapping[str, str], authorization: str | None
) -> tuple[str, str | None, str | None]:
    """``(client_id, secret, assertion)``: who the request says it is, and the one credential it
    presents (a secret by Basic or ``client_secret_post``, or a ``private_key_jwt`` assertion).

    The grant type is checked first, then that exactly one method is used. Nothing is verified
    here: the assertion's issuer is read without checking its signature.
    """
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise InvalidTokenRequest("grant_type is required")
    if grant_type != "client_credentials":
        raise UnsupportedGrantType("only grant_type=client_credentials is supported")

    methods = []
    if authorization is not None:
        methods.append("client_secret_basic")
    if "client_secret" in params:
        methods.append("client_secret_post")
    if "client_assertion" in params or "client_assertion_type" in params:
        methods.append("private_key_jwt")
    if len(methods) > 1:
        raise InvalidTokenRequest("use exactly one client authentication method")
    if not methods:
        raise InvalidClient("client authentication is required")

    form_id = params.get("client_id")
    if methods[0] == "client_secret_basic":
        assert authorization is not None
        client_id, secret = basic_credentials(authorization)
        if form_id is not None and form_id != client_id:
            raise InvalidTokenRequest("client_id does not match the authenticated client")
        return client_id, secret, None
    if methods[0] == "client_secret_post":
        if form_id is None:
            raise InvalidTokenRequest("client_id is required with client_secret")
        return form_id, params["client_secret"], None
    if params.get("client_assertion_type") != JWT_BEARER_ASSERTION_TYPE:
        if "client_assertion_type" not in params:
            raise InvalidTokenRequest("client_assertion_type is required with client_assertion")
        raise InvalidClient(f"client_assertion_type must be {JWT_BEARER_ASSERTION_TYPE}")
    assertion = params.get("client_assertion")
    if assertion is None:
        raise InvalidTokenRequest("client_assertion is required with client_assertion_type")
    if form_id is not None:
        # The endpoint decides: private_key_jwt wants iss == client_id; a federated client's
        # assertion is a token of its platform (another iss, or none for a JWT-SVID).
        return form_id, None, assertion
    try:
        client_id = assertion_subject(assertion)
    except InvalidAssertion as exc:
        raise InvalidClient(exc.description) from None
    return client_id, None, assertion
