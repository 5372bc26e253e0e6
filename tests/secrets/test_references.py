from __future__ import annotations

import pytest

from s2s.secrets import InvalidSecretReference, SecretReference, is_reference, parse_reference

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
