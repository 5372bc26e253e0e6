"""Token clients for the s2s issuer: cached, refreshed ahead of expiry, single-flight, retried.

```python
client = TokenClient("https://issuer.internal/oauth2/token", client_id="orders", client_secret=...)
http = httpx.Client(auth=BearerAuth(client, "https://billing.internal", ["invoices:read"]))
```
"""

from __future__ import annotations

from s2s.client._aio import AsyncTokenClient
from s2s.client._auth import BearerAuth
from s2s.client._core import ClientStats, RefreshPolicy, RetryPolicy, TokenClientSettings
from s2s.client._credentials import ClientCredential, ClientSecret, PrivateKeyJWT
from s2s.client._sync import TokenClient
from s2s.client.errors import (
    DiscoveryError,
    InvalidTokenResponse,
    TokenClientError,
    TokenEndpointUnreachable,
    TokenRequestError,
)
from s2s.oauth import AccessToken

__all__ = [
    "AccessToken",
    "AsyncTokenClient",
    "BearerAuth",
    "ClientCredential",
    "ClientSecret",
    "ClientStats",
    "DiscoveryError",
    "InvalidTokenResponse",
    "PrivateKeyJWT",
    "RefreshPolicy",
    "RetryPolicy",
    "TokenClient",
    "TokenClientError",
    "TokenClientSettings",
    "TokenEndpointUnreachable",
    "TokenRequestError",
]
