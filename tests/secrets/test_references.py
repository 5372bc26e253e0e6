from __future__ import annotations

import pytest

from s2s.secrets import (
    InvalidSecretReference,
    SecretLocation,
    SecretReference,
    is_reference,
    parse_location,
    parse_reference,
)

VID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("aws-sm://db", SecretReference("db")),
        ("aws-sm://prod/s2s/db#password", SecretReference("prod/s2s/db", field="password")),
        ("aws-sm://db#password?stage=AWSPREVIOUS", SecretReference("db", "password", stage="AWSPREVIOUS")),
        ("aws-sm://db?stage=AWSPENDING#password", SecretReference("db", "password", stage="AWSPENDING")),
        (f"aws-sm://db?version_id={VID}", SecretReference("db", version_id=VID)),
        ("aws-sm://db#a%23b", SecretReference("db", field="a#b")),
        (
            "aws-sm://arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf#user",
            SecretReference("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf", field="user"),
        ),
        ("  aws-sm://db  ", SecretReference("db")),
    ],
)
def test_parse(text: str, expected: SecretReference) -> None:
    ref = parse_reference(text)
    assert ref == expected
    assert parse_reference(str(ref)) == ref  # the canonical form round-trips


@pytest.mark.parametrize(
    "text",
    [
        "aws-sm://",
        "aws-sm://#field",
        "aws-sm://db#",
        "aws-sm://db#a#b",
        "aws-sm://db?stage=AWSCURRENT?stage=AWSPREVIOUS",
        "aws-sm://db?colour=red",
        f"aws-sm://db?stage=AWSCURRENT&version_id={VID}",
        "aws-sm://db?version_id=short",
        "aws-sm://db?stage=",
        "aws-sm://bad name",
    ],
)
def test_invalid_references_name_themselves(text: str) -> None:
    with pytest.raises(InvalidSecretReference) as info:
        parse_reference(text)
    assert info.value.error == "invalid_secret_reference"
    assert str(info.value).startswith(text.strip()[:20])


def test_a_non_reference_is_never_echoed() -> None:
    with pytest.raises(InvalidSecretReference) as info:
        parse_reference("hunter2-plain-password")
    assert "hunter2" not in str(info.value)


def test_is_reference() -> None:
    assert is_reference("aws-sm://x") and not is_reference("https://x") and not is_reference(None)


def test_a_value_reference_may_name_a_region() -> None:
    ref = parse_reference("aws-sm://db#password?stage=AWSPREVIOUS&region=eu-west-1")
    assert ref == SecretReference("db", "password", stage="AWSPREVIOUS", region="eu-west-1")
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "reload", "expected"),
    [
        ("aws-sm://prod/keys", False, SecretLocation("prod/keys")),
        ("aws-sm://prod/keys?region=eu-west-1", False, SecretLocation("prod/keys", region="eu-west-1")),
        ("aws-sm://clients?reload=5&region=us-east-2", True, SecretLocation("clients", "us-east-2", 5.0)),
        ("aws-sm://clients?reload=0.5", True, SecretLocation("clients", reload=0.5)),
    ],
)
def test_locations_share_the_grammar(text: str, reload: bool, expected: SecretLocation) -> None:
    assert parse_location(text, "store", reload=reload) == expected


@pytest.mark.parametrize(
    ("text", "reload"),
    [
        ("aws-sm://", False),
        ("aws-sm://keys#field", False),  # a store owns the whole secret
        ("aws-sm://keys?stage=AWSPREVIOUS", False),  # and always works on AWSCURRENT
        (f"aws-sm://keys?version_id={VID}", False),
        ("aws-sm://keys?reload=5", False),  # reload is the client registry's only
        ("aws-sm://keys?reload=0", True),
        ("aws-sm://keys?reload=soon", True),
        ("aws-sm://keys?region=eu-west-1&region=us-east-1", False),
        ("aws-sm://keys?region=Mars", False),
        ("file:///keys", False),
    ],
)
def test_invalid_locations_are_refused(text: str, reload: bool) -> None:
    with pytest.raises(InvalidSecretReference):
        parse_location(text, "store", reload=reload)


def test_reload_is_not_a_value_parameter() -> None:
    with pytest.raises(InvalidSecretReference):
        parse_reference("aws-sm://db?reload=5")
