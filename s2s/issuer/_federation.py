"""Federated client credentials: a client authenticated by a token its platform already gives it.

A :class:`FederatedCredential` names one external identity that may act as a client: the issuer
it trusts, the exact subject, the audience the external token must carry (default: our own issuer
identifier), exact claim matches, the longest age accepted, and where the external issuer's keys
come from. Presets build the real shapes:

* **Kubernetes** projected service-account tokens (:func:`kubernetes_credential`): ``sub =
  system:serviceaccount:NS:SA`` and the ``kubernetes.io`` claim, which must name the same
  namespace and service account. The ``default`` service account matches only a credential that
  names it; a token of it meeting another credential is refused with its own reason.
* **GitHub Actions** (:func:`github_credential`): ``iss = https://token.actions.githubusercontent.com``,
  ``sub = repo:ORG/REPO:ref:refs/heads/BRANCH`` or ``…:environment:ENV``; the ``repository`` claim
  is matched too. No wildcard, unless the credential opts in to a glob (``*`` = any run of
  characters but ``:``), and never in the organisation or repository; ``ORG/REPO`` alone with the
  glob is ``repo:ORG/REPO:ref:*`` (branches and tags, not pull requests nor environments).
* **SPIFFE JWT-SVIDs** (:func:`spiffe_credential`): ``sub = spiffe://TD/path``; the trust domain is
  what is trusted (``iss`` may be absent and is not used); keys from the trust bundle (a JWKS whose
  keys carry ``use: "jwt-svid"``), served by a bundle endpoint or kept in a file.

This module is the model and the matching (pure, no I/O); verification against the external keys
is :mod:`s2s.issuer._federation_verify`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from s2s.errors import ConfigError
from s2s.http import secure_url

__all__ = [
    "DEFAULT_MAX_AGE",
    "FEDERATED_KINDS",
    "GITHUB_ISSUER",
    "KUBERNETES_ISSUER",
    "FederatedCredential",
    "github_credential",
    "kubernetes_credential",
    "spiffe_credential",
]

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
# The service-account issuer of kubeadm and most clusters (`--service-account-issuer`).
KUBERNETES_ISSUER = "https://kubernetes.default.svc.cluster.local"
# A projected service-account token lives an hour by default; the kubelet renews it at 80 %.
DEFAULT_MAX_AGE = 3600.0
FEDERATED_KINDS = ("oidc", "kubernetes", "github", "spiffe")

_K8S_SUBJECT = re.compile(
    r"^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$"
)
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
_GITHUB_SUBJECT = re.compile(r"^repo:([^:]+/[^:]+):(.+)$")
_SPIFFE_ID = re.compile(r"^spiffe://([a-z0-9._-]{1,255})(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?$")
_CLAIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
# GitHub claims that name the repository or its owner (by name or by numeric id).
_GITHUB_REPOSITORY_CLAIMS = ("repository", "repository_owner", "repository_id", "repository_owner_id")
# Claims a credential may not pin: they are checked by the verification itself.
_RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "jti"})


def _text(value: Any, what: str, max_len: int = 1024) -> str:
    if not isinstance(value, str) or not value or len(value) > max_len or not value.isprintable():
        raise ConfigError(f"federated credential: {what} must be a non-empty string")
    return value


def _optional(value: Any, what: str) -> str | None:
    return None if value is None else _text(value, what)


def glob_pattern(pattern: str) -> re.Pattern[str]:
    """A credential glob: ``*`` matches any run of characters except ``:`` (one part of a GitHub
    subject), everything else literally."""
    return re.compile("^" + "[^:]*".join(re.escape(p) for p in pattern.split("*")) + "$")


def spiffe_trust_domain(spiffe_id: str) -> str | None:
    """``spiffe://TD`` of a SPIFFE ID, or None when it is not one."""
    match = _SPIFFE_ID.match(spiffe_id)
    return f"spiffe://{match.group(1)}" if match else None


@dataclass(frozen=True, slots=True)
class FederatedCredential:
    """One external identity a client may be (see the module docstring).

    ``issuer`` is the external token's ``iss`` (``spiffe://TD`` for SPIFFE: the trust domain).
    ``audience`` None means our issuer identifier. Keys: ``jwks_url``, else ``jwks_file``, else
    the issuer's OpenID discovery (never for SPIFFE). ``ca_file`` and ``token_file`` are for a
    JWKS endpoint that needs them (the Kubernetes API server's ``/openid/v1/jwks``).
    """

    issuer: str
    subject: str
    kind: str = "oidc"
    audience: str | None = None
    # Read-only after construction; compared, not hashed (a mapping proxy has no hash).
    claims: Mapping[str, str] = field(default_factory=dict, hash=False)
    glob: bool = False
    max_age: float = DEFAULT_MAX_AGE
    jwks_url: str | None = None
    jwks_file: str | None = None
    ca_file: str | None = None
    token_file: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.kind not in FEDERATED_KINDS:
            raise ConfigError(f"federated credential: kind must be one of {', '.join(FEDERATED_KINDS)}")
        _text(self.issuer, "issuer")
        _text(self.subject, "subject")
        _optional(self.audience, "audience")
        for name in ("jwks_file", "ca_file", "token_file"):
            _optional(getattr(self, name), name)
        if self.jwks_url is not None:
            secure_url(_text(self.jwks_url, "jwks_url"), "federated credential jwks_url")
        if self.jwks_url is not None and self.jwks_file is not None:
            raise ConfigError("federated credential: give jwks_url or jwks_file, not both")
        if (self.ca_file is not None or self.token_file is not None) and self.jwks_url is None:
            raise ConfigError("federated credential: ca_file and token_file go with jwks_url")
        if not isinstance(self.claims, Mapping):
            raise ConfigError("federated credential: claims must be an object of name -> string")
        claims = {}
        for name, value in self.claims.items():
            if not isinstance(name, str) or not _CLAIM_NAME.match(name) or name in _RESERVED_CLAIMS:
                raise ConfigError(f"federated credential: claim {name!r} cannot be matched")
            claims[name] = _text(value, f"claim {name}")
        set_(self, "claims", MappingProxyType(claims))
        age = self.max_age
        if isinstance(age, bool) or not isinstance(age, int | float) or not 0 < age < math.inf:
            raise ConfigError("federated credential: max_age must be a positive number of seconds")
        set_(self, "max_age", float(age))
        if not isinstance(self.glob, bool):
            raise ConfigError("federated credential: glob must be true or false")
        if self.glob and self.kind != "github":
            raise ConfigError("federated credential: glob matching is only for GitHub Actions credentials")
        if "*" in self.subject and not self.glob:
            raise ConfigError("federated credential: '*' in a subject needs the explicit glob opt-in")
        getattr(self, f"_check_{self.kind}")()

    def _check_oidc(self) -> None:
        if self.jwks_url is None and self.jwks_file is None:
            secure_url(self.issuer, "federated credential issuer (used for discovery)")

    def _check_kubernetes(self) -> None:
        self._check_oidc()
        if not _K8S_SUBJECT.match(self.subject):
            raise ConfigError("kubernetes credential: subject must be system:serviceaccount:NAMESPACE:NAME")

    def _check_github(self) -> None:
        self._check_oidc()
        match = _GITHUB_SUBJECT.match(self.subject)
        if match is None or not _GITHUB_REPO.match(match.group(1)):
            raise ConfigError(
                "github credential: subject must be repo:ORG/REPO:ref:refs/heads/BRANCH, "
                "repo:ORG/REPO:environment:NAME or another GitHub subject of one repository"
            )
        if any("*" in self.claims.get(name, "") for name in ("repository", "repository_owner")):
            raise ConfigError("github credential: no wildcard in the repository or its owner")

    def _check_spiffe(self) -> None:
        domain = spiffe_trust_domain(self.issuer)
        if domain != self.issuer:
            raise ConfigError("spiffe credential: issuer must be the trust domain, spiffe://TRUST_DOMAIN")
        if spiffe_trust_domain(self.subject) != self.issuer or self.subject == self.issuer:
            raise ConfigError("spiffe credential: subject must be a SPIFFE ID of that trust domain")
        if self.jwks_url is None and self.jwks_file is None:
            raise ConfigError("spiffe credential: the trust bundle (a URL or a file) is required")

    # -- matching (after the token verified) -------------------------------------------------------

    @property
    def github_repository(self) -> str | None:
        match = _GITHUB_SUBJECT.match(self.subject) if self.kind == "github" else None
        return match.group(1) if match else None

    def trusts(self, iss: Any, sub: Any) -> bool:
        """Whether a token with this ``iss`` and ``sub`` comes from the issuer this trusts."""
        if self.kind == "spiffe":
            return isinstance(sub, str) and spiffe_trust_domain(sub) == self.issuer
        return isinstance(iss, str) and iss == self.issuer

    def _equal(self, pattern: str, value: Any) -> bool:
        if not isinstance(value, str):
            return False
        if self.glob and "*" in pattern:
            return glob_pattern(pattern).match(value) is not None
        return value == pattern

    def mismatch(self, claims: Mapping[str, Any]) -> str | None:
        """Why a verified token's claims are not this identity (a reason for the log), or None."""
        sub = claims.get("sub")
        if not self._equal(self.subject, sub):
            return self._subject_reason(sub)
        if self.kind == "kubernetes":
            reason = _kubernetes_claim_mismatch(self.subject, claims.get("kubernetes.io"))
            if reason is not None:
                return reason
        for name, expected in self.claims.items():
            if not self._equal(expected, claims.get(name)):
                if self.kind == "github" and name in _GITHUB_REPOSITORY_CLAIMS:
                    return "github token from another repository"
                if self.kind == "github" and name in ("ref", "environment", "job_workflow_ref"):
                    return f"github token from another branch or environment ({name})"
                return f"claim {name} does not match"
        return None

    def _subject_reason(self, sub: Any) -> str:
        if not isinstance(sub, str):
            return "wrong subject (none)"
        if self.kind == "kubernetes":
            match = _K8S_SUBJECT.match(sub)
            if match is not None and match.group(3) == "default":
                return "kubernetes default service account (only a credential naming it may use it)"
        if self.kind == "github":
            got = _GITHUB_SUBJECT.match(sub)
            if got is None or got.group(1) != self.github_repository:
                return "github token from another repository"
            return "github token from another branch or environment"
        if self.kind == "spiffe" and spiffe_trust_domain(sub) != self.issuer:
            return "JWT-SVID from another trust domain"
        return "wrong subject"

    # -- storage -----------------------------------------------------------------------------------

    def key_source(self) -> tuple[str, ...]:
        """What identifies where the keys come from (credentials sharing it share one source)."""
        where = self.jwks_url or self.jwks_file or "discovery"
        kind = "spiffe" if self.kind == "spiffe" else "jwks"
        return (kind, self.issuer, where, self.ca_file or "", self.token_file or "")

    def describe(self) -> str:
        """One short line for tables: kind, subject, issuer."""
        at = "" if self.kind in ("github", "spiffe") else f"@{self.issuer}"
        return f"{self.kind}:{self.subject}{at}"

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "issuer": self.issuer, "subject": self.subject}
        for name in ("audience", "jwks_url", "jwks_file", "ca_file", "token_file"):
            value = getattr(self, name)
            if value is not None:
                doc[name] = value
        if self.claims:
            doc["claims"] = dict(self.claims)
        if self.glob:
            doc["glob"] = True
        doc["max_age"] = self.max_age
        return doc

    @classmethod
    def from_document(cls, doc: Any) -> FederatedCredential:
        if not isinstance(doc, Mapping):
            raise ConfigError("a federated credential must be a JSON object")
        known = {
            "kind", "issuer", "subject", "audience", "claims", "glob", "max_age",
            "jwks_url", "jwks_file", "ca_file", "token_file",
        }  # fmt: skip
        unknown = sorted(str(k) for k in doc if k not in known)
        if unknown:
            raise ConfigError(f"federated credential: unknown member {unknown[0]!r}")
        try:
            return cls(**{k: v for k, v in doc.items() if k != "claims"}, claims=doc.get("claims") or {})
        except TypeError:
            raise ConfigError("malformed federated credential") from None


def _kubernetes_claim_mismatch(subject: str, value: Any) -> str | None:
    """The ``kubernetes.io`` claim must be there and name the subject's namespace and account: a
    token without it is not a service-account token of a cluster."""
    match = _K8S_SUBJECT.match(subject)
    if match is None:  # checked at construction
        return "kubernetes credential subject is malformed"
    if not isinstance(value, Mapping):
        return "kubernetes token without its kubernetes.io claim"
    account = value.get("serviceaccount")
    name = account.get("name") if isinstance(account, Mapping) else None
    if value.get("namespace") != match.group(1) or name != match.group(3):
        return "kubernetes.io claim names another namespace or service account than sub"
    return None


# -- presets ---------------------------------------------------------------------------------------


def kubernetes_credential(
    namespace_account: str, *, issuer: str = KUBERNETES_ISSUER, **options: Any
) -> FederatedCredential:
    """``NS/SA``: the projected service-account token of that account in that namespace."""
    namespace, sep, account = namespace_account.partition("/")
    if not sep or not namespace or not account:
        raise ConfigError("--kubernetes takes NAMESPACE/SERVICE_ACCOUNT")
    return FederatedCredential(
        kind="kubernetes", issuer=issuer, subject=f"system:serviceaccount:{namespace}:{account}", **options
    )


def github_credential(
    spec: str, *, issuer: str = GITHUB_ISSUER, glob: bool = False, **options: Any
) -> FederatedCredential:
    """``ORG/REPO:ref:refs/heads/main``, ``ORG/REPO:environment:prod`` (any GitHub subject after
    ``repo:``); ``ORG/REPO`` alone only with ``glob``: then ``repo:ORG/REPO:ref:*``, any branch or
    tag of that repository, never its pull requests or environments (they need their own)."""
    repo, sep, rest = spec.removeprefix("repo:").partition(":")
    if not _GITHUB_REPO.match(repo):
        raise ConfigError("--github takes ORG/REPO[:ref:refs/heads/BRANCH|:environment:NAME]")
    if not sep:
        if not glob:
            raise ConfigError(
                "--github ORG/REPO needs :ref:refs/heads/BRANCH or :environment:NAME "
                "(or --federated-glob for any branch or tag of the repository; "
                "never its pull requests or environments)"
            )
        # Any ref (a ref has no ':'), and nothing else: a pull request or an environment is a
        # different trust decision, registered with its own subject.
        rest = "ref:*"
    claims = dict(options.pop("claims", None) or {})
    claims.setdefault("repository", repo)
    return FederatedCredential(
        kind="github", issuer=issuer, subject=f"repo:{repo}:{rest}", glob=glob, claims=claims, **options
    )


def spiffe_credential(spiffe_id: str, bundle: str, **options: Any) -> FederatedCredential:
    """A JWT-SVID of ``spiffe://TD/path``, its keys in the trust bundle at ``bundle`` (an
    https/loopback URL, or a file)."""
    domain = spiffe_trust_domain(spiffe_id)
    if domain is None:
        raise ConfigError("--spiffe takes a SPIFFE ID, spiffe://TRUST_DOMAIN/PATH")
    if not bundle:
        raise ConfigError("a SPIFFE credential needs its trust bundle (--spiffe-bundle URL|FILE)")
    remote = bundle.startswith(("https://", "http://"))
    where: dict[str, Any] = {"jwks_url" if remote else "jwks_file": bundle}
    return FederatedCredential(kind="spiffe", issuer=domain, subject=spiffe_id, **where, **options)
