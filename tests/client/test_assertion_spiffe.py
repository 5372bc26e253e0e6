"""SpiffeAssertionSource: real py-spiffe against a local SPIFFE Workload API (gRPC on a unix
socket, as a SPIRE agent serves it), and the token client sending the JWT-SVID it hands out."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import grpc
import httpx
import pytest
from spiffe._proto import workload_pb2, workload_pb2_grpc

from s2s.client import (
    AssertionExpired,
    AssertionUnavailable,
    AsyncTokenClient,
    SpiffeAssertionSource,
    TokenClient,
)
from s2s.errors import ConfigError
from tests.client.assertion_support import claims_of, platform_token
from tests.client.helpers import TOKEN_URL, FakeTokenEndpoint

ISSUER = "https://issuer.internal"
SPIFFE_ID = "spiffe://prod.example/ns/orders/sa/api"


@dataclass
class Agent(workload_pb2_grpc.SpiffeWorkloadAPIServicer):  # type: ignore[misc]
    """The JWT-SVID part of a SPIRE agent's Workload API."""

    lifetime: float = 300
    requests: list[tuple[list[str], str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def FetchJWTSVID(self, request: Any, context: Any) -> Any:
        # A real agent refuses callers that do not send the Workload API's security header.
        if ("workload.spiffe.io", "true") not in context.invocation_metadata():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing from request")
        self.requests.append((list(request.audience), request.spiffe_id))
        token = platform_token(time.time() + self.lifetime, sub=SPIFFE_ID, aud=list(request.audience))
        self.issued.append(token)
        return workload_pb2.JWTSVIDResponse(svids=[workload_pb2.JWTSVID(spiffe_id=SPIFFE_ID, svid=token)])


@pytest.fixture
def agent() -> Iterator[tuple[Agent, str]]:
    # A short directory: unix socket paths are limited to 108 bytes.
    directory = tempfile.mkdtemp(prefix="spire-", dir="/tmp")
    socket = f"unix://{directory}/agent.sock"
    servicer = Agent()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix:{directory}/agent.sock")
    server.start()
    try:
        yield servicer, socket
    finally:
        server.stop(grace=None).wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def test_a_jwt_svid_for_the_issuer_each_time(agent: tuple[Agent, str]) -> None:
    servicer, socket = agent
    with SpiffeAssertionSource(ISSUER, socket_path=socket) as source:
        first, second = source.get(), source.get()
        assert asyncio.run(source.aget()) == servicer.issued[2]
    assert [first, second] == servicer.issued[:2] and first != second  # fresh at every call
    assert servicer.requests[0] == ([ISSUER], "")
    assert claims_of(first)["sub"] == SPIFFE_ID and claims_of(first)["aud"] == [ISSUER]
    assert socket in repr(source) and first not in repr(source)
    with pytest.raises(AssertionUnavailable, match="the source is closed"):
        source.get()


def test_the_token_client_sends_the_svid_as_its_client_assertion(agent: tuple[Agent, str]) -> None:
    servicer, socket = agent
    endpoint = FakeTokenEndpoint(expires_in=60)
    with SpiffeAssertionSource(ISSUER, socket_path=socket, subject=SPIFFE_ID) as source:
        client = TokenClient(
            TOKEN_URL, client_id="orders", client_assertion=source, transport=httpx.MockTransport(endpoint)
        )
        client.get_token("https://billing.internal")

        async def run() -> None:
            async with AsyncTokenClient(
                TOKEN_URL,
                client_id="orders",
                client_assertion=source,
                transport=httpx.MockTransport(endpoint),
            ) as aclient:
                await aclient.get_token("https://billing.internal")

        asyncio.run(run())
    sent = [parse_qs(r.content.decode())["client_assertion"][0] for r in endpoint.requests]
    assert sent == servicer.issued and len(sent) == 2
    assert servicer.requests[0] == ([ISSUER], SPIFFE_ID)


def test_an_expired_svid_is_refused(agent: tuple[Agent, str]) -> None:
    servicer, socket = agent
    servicer.lifetime = -10
    with SpiffeAssertionSource(ISSUER, socket_path=socket) as source, pytest.raises(AssertionUnavailable):
        # py-spiffe itself refuses an expired JWT-SVID; either way nothing expired is handed out.
        source.get()


def test_an_agent_that_is_down_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        SpiffeAssertionSource(ISSUER, socket_path=f"unix://{tmp_path}/none.sock")


class BorrowedClient:
    """A client the caller owns (a py-spiffe JwtSource/WorkloadApiClient): the source must not close it."""

    def __init__(self, token: str) -> None:
        self.token, self.closed = token, False

    def fetch_jwt_svid(self, audience: set[str], subject: object, timeout: float | None = None) -> Any:
        return type("Svid", (), {"token": self.token})()

    def close(self) -> None:
        self.closed = True


def test_a_borrowed_client_is_left_open_and_an_expired_token_is_named() -> None:
    borrowed = BorrowedClient(platform_token(time.time() + 60))
    source = SpiffeAssertionSource(ISSUER, client=borrowed)
    assert source.get() == borrowed.token
    source.close()
    assert borrowed.closed is False  # closes only what it opened
    borrowed.token = platform_token(time.time() - 5)
    with pytest.raises(AssertionExpired, match="SPIFFE Workload API"):
        SpiffeAssertionSource(ISSUER, client=borrowed).get()


def test_without_the_extra_the_error_names_the_install_command() -> None:
    code = (
        "import sys; sys.modules['spiffe'] = None\n"
        "from s2s.client import SpiffeAssertionSource\n"
        "try:\n    SpiffeAssertionSource('https://issuer.internal')\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "MissingExtra spiffe is not installed: pip install 's2s[spiffe]'"
