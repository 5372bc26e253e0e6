"""AWS in one home: the boto3 client factory and its settings, the botocore log redaction, the one
seam every AWS call goes through (:class:`AwsService`), and the Secrets Manager access layer.

Adapters built on it: the Secrets Manager key store (:mod:`s2s.keys._aws_sm`), the Secrets Manager
client registry (:mod:`s2s.issuer._aws_clients`), the ``aws-sm://`` secrets source
(:mod:`s2s.secrets`), the DynamoDB issuer state (:mod:`s2s.issuer._dynamodb`) and the KMS signer
(:mod:`s2s.keys._kms`). ``aws-sm://`` references and locations share one grammar:
:mod:`s2s.secrets._references`.
"""

from __future__ import annotations

from s2s.aws._client import (
    DEFAULT_REGION,
    AwsService,
    AwsSettings,
    CircuitBreaker,
    SecretRecordFilter,
    aws_client,
    aws_region,
    error_code,
    install_botocore_redaction,
)
from s2s.aws._secretsmanager import CURRENT_STAGE, PENDING_STAGE, SecretsManager, SecretsManagerDocument
from s2s.aws.errors import AwsError, AwsNoCredentials, AwsUnreachable

__all__ = [
    "CURRENT_STAGE",
    "DEFAULT_REGION",
    "PENDING_STAGE",
    "AwsError",
    "AwsNoCredentials",
    "AwsService",
    "AwsSettings",
    "AwsUnreachable",
    "CircuitBreaker",
    "SecretRecordFilter",
    "SecretsManager",
    "SecretsManagerDocument",
    "aws_client",
    "aws_region",
    "error_code",
    "install_botocore_redaction",
]
