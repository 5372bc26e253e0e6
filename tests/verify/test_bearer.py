"""extract_bearer: the one parser of the Authorization header."""

from __future__ import annotations

import pytest

from s2s.verify import InvalidRequest, MalformedToken, MissingToken, extract_bearer

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER  {TOKEN} "])
def test_one_bearer_credential(header: str) -> None:
    assert extract_bearer(header) == TOKEN


@pytest.mark.parametrize("header", [None, "", "   ", f"Basic {TOKEN}", "Digest x=1"])
def test_missing(header: str | None) -> None:
    with pytest.raises(MissingToken) as info:
        extract_bearer(header)
    assert info.value.error == "" and info.value.status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {TOKEN}, Bearer {TOKEN}",
        f"Bearer {TOKEN} {TOKEN}",
        f"Bearer {TOKEN}\t{TOKEN}",
        "Bearer  ",
        "Bearer",
    ],
)
def test_several_or_empty_credentials(header: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        extract_bearer(header)
    assert info.value.status_code == 400 and TOKEN not in str(info.value)


@pytest.mark.parametrize(
    "query", [b"access_token=" + TOKEN.encode(), f"a=1&access_token={TOKEN}", b"x=1;access%5Ftoken=abc"]
)
def test_token_in_query_string_refused(query: bytes | str) -> None:
    with pytest.raises(InvalidRequest):
        extract_bearer(f"Bearer {TOKEN}", query_string=query)
    with pytest.raises(InvalidRequest):
        extract_bearer(None, query_string=query)


def test_other_query_parameters_are_fine() -> None:
    assert extract_bearer(f"Bearer {TOKEN}", query_string=b"page=2&my_access_token_count=3") == TOKEN


def test_oversized_header() -> None:
    big = "a" * 9000
    with pytest.raises(InvalidRequest) as info:
        extract_bearer(f"Bearer {big}")
    assert big not in str(info.value)
    assert extract_bearer(f"Bearer {big}", max_header_bytes=10_000) == big


@pytest.mark.parametrize("cred", ["abc<def", 'a"b', "é", "a=b", "%41"])
def test_malformed_token68(cred: str) -> None:
    with pytest.raises(MalformedToken, match="malformed token"):
        extract_bearer(f"Bearer {cred}")
