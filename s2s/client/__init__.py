"""Token clients for the s2s issuer: cached, refreshed ahead of expiry, single-flight, retried.

```python
client = TokenClient("https://issuer.internal/oauth2/token", client_id="orders", client_secret=...)
http = httpx.Client(auth=BearerAuth(client, "https://billing.internal", ["invoices:read"]))
```

Without a secret: the token the platform gives the workload, re-read when it is rotated::

    assertion = ClientAssertion(FileAssertionSource("/var/run/secrets/tokens/s2s-token"))
    client = TokenClient(endpoint, client_id="orders", client_assertion=assertion)
"""

from __future__ import annotations

from s2s.client._aio import AsyncTokenClient
from s2s.client._assertions import (
    AssertionSource,
    CallableAssertionSource,
    EnvAssertionSource,
    FileAssertionSource,
    SpiffeAssertionSource,
)
from s2s.client._auth import BearerAuth
from s2s.client._core import ClientStats, RefreshPolicy, RetryPolicy, TokenClientSettings
from s2s.client._credentials import ClientAssertion, ClientCredential, ClientSecret, PrivateKeyJWT
from s2s.client._sync import TokenClient
from s2s.client.errors import (
    AssertionExpired,
    AssertionUnavailable,
    DiscoveryError,
    InvalidTokenResponse,
    TokenClientError,
    TokenEndpointUnreachable,
    TokenRequestError,
)
from s2s.oauth import AccessToken

__all__ = [
    "AccessToken",
    "AssertionExpired",
    "AssertionSource",
    "AssertionUnavailable",
    "AsyncTokenClient",
    "BearerAuth",
    "CallableAssertionSource",
    "ClientAssertion",
    "ClientCredential",
    "ClientSecret",
    "ClientStats",
    "DiscoveryError",
    "EnvAssertionSource",
    "FileAssertionSource",
    "InvalidTokenResponse",
    "PrivateKeyJWT",
    "RefreshPolicy",
    "RetryPolicy",
    "SpiffeAssertionSource",
    "TokenClient",
    "TokenClientError",
    "TokenClientSettings",
    "TokenEndpointUnreachable",
    "TokenRequestError",
]
