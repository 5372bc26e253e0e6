"""botocore's DEBUG records of KMS Sign carry the signing input and the signature: a usable token."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from s2s.aws import aws_client


def test_kms_sign_debug_records_are_withheld(mock_aws: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="botocore")
    signing_input = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJvcmRlcnMifQ"
    kms: Any = aws_client("kms", region="us-east-1")
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signature = kms.sign(
        KeyId=key_id, Message=signing_input, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
    )["Signature"]
    assert "withheld" in caplog.text  # botocore did log the call at DEBUG
    assert base64.b64encode(signing_input).decode() not in caplog.text
    assert base64.b64encode(signature).decode() not in caplog.text
