"""How a client proves who it is to our token endpoint.

* :class:`ClientSecret` — ``client_secret_basic``: id and secret, each form-urlencoded
  (RFC 6749 §2.3.1), in an ``Authorization: Basic`` header.
* :class:`PrivateKeyJWT` — RFC 7523 ``private_key_jwt``: a fresh, short-lived assertion per request
  (iss = sub = client id, aud = the token endpoint, unique ``jti``, ``kid`` header), signed with a
  private key loaded from a JWK or PEM (inline, a file, or an ``aws-sm://`` reference).
* :class:`ClientAssertion` — RFC 7523 client authentication with an assertion made by someone else
  (a platform token: Kubernetes, GitHub Actions, SPIFFE), taken fresh from an assertion source at
  every request (no secret at all).

All keep their material out of ``repr`` and every error message.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote_plus

from s2s.client._assertions import AssertionSource, FileAssertionSource
from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError
from s2s.jose import (
    JoseError,
    PrivateKey,
    algs_for_jwk,
    load_pem_private_key,
    private_key_from_jwk,
    public_key_to_jwk,
    serialize_compact,
    sign_function,
    thumbprint,
)
from s2s.oauth import JWT_BEARER_ASSERTION_TYPE
from s2s.secrets import SecretsManagerSource, SecretSource, is_reference, resolve

__all__ = ["ClientAssertion", "ClientCredential", "ClientSecret", "PrivateKeyJWT", "load_credential"]


class ClientCredential(Protocol):
    @property
    def method(self) -> str:
        """The ``token_endpoint_auth_method`` (RFC 7591) this credential uses."""
        ...

    def apply(
        self,
        client_id: str,
        token_endpoint: str,
        now: float,
        form: MutableMapping[str, str],
        headers: MutableMapping[str, str],
    ) -> tuple[str, ...]:
        """Authenticate one token request; return the sensitive strings it added (to scrub them)."""
        ...


@dataclass(frozen=True, slots=True)
class ClientSecret:
    """``client_secret_basic``. ``value`` may be an ``aws-sm://`` reference: see :meth:`resolved`."""

    value: str = field(repr=False)
    method: str = field(default="client_secret_basic", init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not self.value:
            raise ConfigError("the client secret is empty")

    def resolved(self, source: SecretSource | None = None) -> ClientSecret:
        """This secret, or the one its ``aws-sm://`` reference names (read once, now)."""
        if not is_reference(self.value):
            return self
        return ClientSecret(resolve(self.value, source=source))

    def apply(
        self,
        client_id: str,
        token_endpoint: str,
        now: float,
        form: MutableMapping[str, str],
        headers: MutableMapping[str, str],
    ) -> tuple[str, ...]:
        encoded = quote_plus(self.value)
        raw = f"{quote_plus(client_id)}:{encoded}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        return (self.value, encoded, headers["Authorization"])


def _jwt_bearer(client_id: str, assertion: str, form: MutableMapping[str, str]) -> tuple[str, ...]:
    """RFC 7523 §2.2 client authentication, with ``client_id`` (which the issuer requires)."""
    form["client_assertion_type"] = JWT_BEARER_ASSERTION_TYPE
    form["client_assertion"] = assertion
    form["client_id"] = client_id
    return (assertion,)


def _import_private_key(
    material: str | bytes | Mapping[str, Any], password: str | bytes | None
) -> tuple[PrivateKey, str | None]:
    """A private EC/RSA/OKP key from a JWK (object or JSON text) or a PEM, and the JWK's ``kid``.

    Errors never quote the material.
    """
    if isinstance(material, bytes):
        try:
            material = material.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError("the private key is neither PEM nor a JSON JWK") from None
    if isinstance(material, str) and material.lstrip().startswith("{"):
        try:
            material = json.loads(material)
        except ValueError:
            raise ConfigError("the private key looks like JSON but does not parse") from None
    if isinstance(material, Mapping):
        jwk: Any = material
        if isinstance(jwk.get("keys"), list):
            keys = jwk["keys"]
            if len(keys) != 1 or not isinstance(keys[0], Mapping):
                raise ConfigError("a private JWKS for private_key_jwt must hold exactly one key")
            jwk = keys[0]
        if not isinstance(jwk.get("d"), str):
            raise ConfigError("the JWK has no private part: private_key_jwt needs the private key")
        kty = jwk.get("kty")
        if kty not in ("EC", "RSA", "OKP"):
            raise ConfigError(f"private_key_jwt needs an EC, RSA or OKP key, not {kty!r}")
        try:
            imported = private_key_from_jwk(jwk)
        except JoseError as exc:
            raise ConfigError(f"the private JWK is not valid ({exc.description})") from None
        kid = jwk.get("kid")
        return imported, kid if isinstance(kid, str) and kid else None
    if not isinstance(material, str) or "-----BEGIN" not in material:
        raise ConfigError("the private key is neither PEM nor a JSON JWK")
    pwd = password.encode() if isinstance(password, str) else password
    try:
        return load_pem_private_key(material.encode(), pwd), None
    except JoseError as exc:
        raise ConfigError(exc.description) from None


class PrivateKeyJWT:
    """``private_key_jwt`` with one private key.

    ``kid`` defaults to the JWK's own ``kid``, else the RFC 7638 thumbprint — what the issuer
    assigns a registered key that has none. ``alg`` defaults to the first algorithm the issuer
    allows for the key type (ES256, ES384, RS256, Ed25519). ``lifetime`` is the assertion's
    ``exp - iat`` in seconds: short, because an assertion is a bearer credential until it expires.
    """

    method = "private_key_jwt"

    def __init__(
        self,
        key: str | bytes | Mapping[str, Any],
        *,
        kid: str | None = None,
        alg: str | None = None,
        lifetime: float = 60.0,
        password: str | bytes | None = None,
    ) -> None:
        private, declared = _import_private_key(key, password)
        public = public_key_to_jwk(private.public_key())
        self.kid: str = kid or declared or thumbprint(public)
        allowed = algs_for_jwk(public if alg is None else {**public, "alg": alg})
        if not allowed:
            raise ConfigError(f"algorithm {alg!r} is not allowed for this {public['kty']} key")
        self.alg: str = allowed[0]
        if not 0 < lifetime <= 300:
            raise ConfigError("the assertion lifetime must be > 0 and <= 300 seconds")
        self.lifetime = float(lifetime)
        self._sign = sign_function(private, self.alg)
        self.public_jwk: dict[str, Any] = {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **options: Any) -> PrivateKeyJWT:
        """A PEM or JWK file (the path is named in errors; the content never is)."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the private key file {os.fspath(path)}: {exc.strerror}") from None
        return cls(data, **options)

    @classmethod
    def from_secret(
        cls, reference: str, *, source: SecretSource | None = None, **options: Any
    ) -> PrivateKeyJWT:
        """The PEM or JWK an ``aws-sm://name[#field]`` reference names, read once, now."""
        return cls((source or SecretsManagerSource()).get(reference), **options)

    @classmethod
    def load(
        cls, value: str | os.PathLike[str], *, source: SecretSource | None = None, **options: Any
    ) -> PrivateKeyJWT:
        """An ``aws-sm://`` reference, inline PEM/JWK text, or else a file path."""
        if isinstance(value, str):
            if is_reference(value):
                return cls.from_secret(value, source=source, **options)
            if value.lstrip().startswith(("{", "-----BEGIN")):
                return cls(value, **options)
            if not os.path.exists(value):
                # Possibly key material in another form (base64 DER, a PEM without its header):
                # naming it as a missing path would print it.
                raise ConfigError(
                    "the private key is not an aws-sm:// reference, PEM or JWK text, or an existing file"
                )
        return cls.from_file(value, **options)

    def __repr__(self) -> str:
        return f"PrivateKeyJWT(kid={self.kid!r}, alg={self.alg!r})"

    def jwks(self) -> dict[str, Any]:
        """The public JWKS to register: ``s2s clients add ID --jwks FILE`` with this as FILE."""
        return {"keys": [dict(self.public_jwk)]}

    def assertion(self, client_id: str, audience: str, now: float) -> str:
        """A new signed client assertion (never reused: its ``jti`` is random)."""
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": int(now),
            "exp": int(now + self.lifetime),
            "jti": secrets.token_urlsafe(24),
        }
        return serialize_compact({"alg": self.alg, "kid": self.kid, "typ": "JWT"}, claims, self._sign)

    def apply(
        self,
        client_id: str,
        token_endpoint: str,
        now: float,
        form: MutableMapping[str, str],
        headers: MutableMapping[str, str],
    ) -> tuple[str, ...]:
        return _jwt_bearer(client_id, self.assertion(client_id, token_endpoint, now), form)


class ClientAssertion:
    """RFC 7523 client authentication with an assertion someone else made: the platform token in
    ``source`` (see :class:`~s2s.client.FileAssertionSource` and its siblings), sent as
    ``client_assertion`` with ``client_assertion_type=...:jwt-bearer`` and ``client_id``.

    Each request takes the source's current assertion, so a rotated token file is used from the
    next request on. The wire form is ``private_key_jwt``'s (RFC 7591 has no other name for it);
    the issuer tells them apart by the client's registration.
    """

    method = "private_key_jwt"

    def __init__(self, source: AssertionSource) -> None:
        if not callable(getattr(source, "get", None)):
            raise ConfigError("ClientAssertion needs an assertion source (an object with get())")
        self.source = source

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, clock: Clock = system_clock) -> ClientAssertion:
        """The assertion in ``path``, re-read when it changes (a projected service-account token)."""
        return cls(FileAssertionSource(path, clock=clock))

    def __repr__(self) -> str:
        return f"ClientAssertion({self.source!r})"

    def resolved(self, source: SecretSource | None = None) -> ClientAssertion:
        """Itself: nothing to resolve (the same call as on the other credentials)."""
        return self

    def fill(self, client_id: str, assertion: str, form: MutableMapping[str, str]) -> tuple[str, ...]:
        """Put ``assertion`` (already taken from the source) into ``form``."""
        return _jwt_bearer(client_id, assertion, form)

    def apply(
        self,
        client_id: str,
        token_endpoint: str,
        now: float,
        form: MutableMapping[str, str],
        headers: MutableMapping[str, str],
    ) -> tuple[str, ...]:
        return self.fill(client_id, self.source.get(), form)


def load_credential(
    *,
    client_secret: str | ClientSecret | None = None,
    private_key: str | os.PathLike[str] | PrivateKeyJWT | None = None,
    client_assertion: ClientAssertion | AssertionSource | None = None,
    secret_source: SecretSource | None = None,
) -> ClientCredential:
    """Exactly one of a client secret, a private key or a client assertion (source), with
    ``aws-sm://`` references resolved."""
    if sum(x is not None for x in (client_secret, private_key, client_assertion)) != 1:
        raise ConfigError("give exactly one of client_secret, private_key or client_assertion")
    if client_assertion is not None:
        if isinstance(client_assertion, ClientAssertion):
            return client_assertion
        return ClientAssertion(client_assertion)
    if client_secret is not None:
        secret = client_secret if isinstance(client_secret, ClientSecret) else ClientSecret(client_secret)
        return secret.resolved(secret_source)
    assert private_key is not None
    if isinstance(private_key, PrivateKeyJWT):
        return private_key
    return PrivateKeyJWT.load(private_key, source=secret_source)
