from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from s2s.aws import PENDING_STAGE
from s2s.errors import ConfigError, VersionConflict
from s2s.keys import KeySet, KeyState, SecretsManagerKeyStore, generate_key, open_keystore
from s2s.keys.errors import KeyStoreError

NAME = "s2s/test-keyset"


def retired(n: int = 1) -> KeySet:
    return KeySet(tuple(generate_key(now=float(i), state=KeyState.RETIRED) for i in range(n)))


def stages(sm: Any) -> dict[str, list[str]]:
    return dict(sm.describe_secret(SecretId=NAME)["VersionIdsToStages"])


def test_each_save_moves_awscurrent_and_leaves_no_staging_label(sm: Any) -> None:
    # The compare-and-swap itself is the key-store contract (test_store_contract.py).
    store = SecretsManagerKeyStore(NAME, client=sm)
    first = store.save(retired(), None)
    second = store.save(retired(2), first)
    assert "AWSCURRENT" in stages(sm)[second] and "AWSCURRENT" not in stages(sm)[first]
    with pytest.raises(VersionConflict):
        store.save(retired(3), first)
    assert [v for v, s in stages(sm).items() if "AWSCURRENT" in s] == [second]
    # the private staging label never stays behind, not even after a lost race
    assert not any(PENDING_STAGE in s for s in stages(sm).values())


def test_corrupt_secret_is_a_clear_error_without_its_value(sm: Any) -> None:
    key = generate_key(now=0.0, state=KeyState.CURRENT)
    assert key.private_jwk is not None
    secret = str(key.private_jwk["d"])
    text = json.dumps(KeySet((key,)).to_document())
    sm.create_secret(Name=NAME, SecretString=text[:-10])
    with pytest.raises(KeyStoreError, match="not valid JSON") as info:
        SecretsManagerKeyStore(NAME, client=sm).load()
    assert secret not in str(info.value)
    sm.put_secret_value(SecretId=NAME, SecretString=text.replace(key.kid, "y" * 43))
    with pytest.raises(KeyStoreError, match="not a valid keyset") as info:
        SecretsManagerKeyStore(NAME, client=sm).load()
    assert secret not in str(info.value)


def test_aws_errors_name_the_code_not_the_payload() -> None:
    body_marker = "PRIVATE-MATERIAL-MARKER"

    class Refusing:
        def get_secret_value(self, **kwargs: Any) -> Any:
            return {"SecretString": json.dumps(KeySet().to_document()), "VersionId": "v1"}

        def put_secret_value(self, **kwargs: Any) -> Any:
            exc = Exception(f"value {kwargs['SecretString']} {body_marker} too large")
            exc.response = {"Error": {"Code": "ValidationException", "Message": str(exc)}}  # type: ignore[attr-defined]
            raise exc

    store = SecretsManagerKeyStore(NAME, client=Refusing())  # type: ignore[arg-type]
    with pytest.raises(KeyStoreError) as info:
        store.save(retired(), "v1")
    assert "ValidationException" in str(info.value)
    assert body_marker not in str(info.value)


def test_urls(sm: Any) -> None:
    store = open_keystore(f"aws-sm://{NAME}")
    assert isinstance(store, SecretsManagerKeyStore) and store.secret_name == NAME
    assert store.url == f"aws-sm://{NAME}"
    regional = SecretsManagerKeyStore.from_url("aws-sm://prod/keys?region=eu-west-1")
    assert regional.secret_name == "prod/keys"
    assert regional.client.meta.region_name == "eu-west-1"
    with pytest.raises(ConfigError):
        open_keystore("aws-sm://")
    # the default client goes through s2s.aws and reaches moto like an injected one
    store.save(retired(), None)
    assert len(SecretsManagerKeyStore(NAME, client=sm).load()[0]) == 1


def test_moto_enforces_remove_from_version_id(sm: Any) -> None:
    """The CAS rests on this Secrets Manager rule; check the emulator really applies it."""
    v0 = sm.create_secret(Name=NAME, SecretString="0")["VersionId"]
    v1 = sm.put_secret_value(SecretId=NAME, SecretString="1", VersionStages=[PENDING_STAGE])["VersionId"]
    v2 = sm.put_secret_value(SecretId=NAME, SecretString="2", VersionStages=["OTHER"])["VersionId"]
    sm.update_secret_version_stage(
        SecretId=NAME, VersionStage="AWSCURRENT", MoveToVersionId=v1, RemoveFromVersionId=v0
    )
    with pytest.raises(sm.exceptions.InvalidParameterException):
        sm.update_secret_version_stage(
            SecretId=NAME, VersionStage="AWSCURRENT", MoveToVersionId=v2, RemoveFromVersionId=v0
        )
    assert sm.get_secret_value(SecretId=NAME, VersionStage="AWSCURRENT")["VersionId"] == v1


def test_a_lost_answer_to_a_successful_switch_is_not_a_conflict(sm: Any) -> None:
    """botocore retries a timed-out call; the retry fails because the first attempt succeeded."""

    class LosesAnswer:
        def __init__(self, real: Any) -> None:
            self.real = real

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

        def update_secret_version_stage(self, **kwargs: Any) -> Any:
            self.real.update_secret_version_stage(**kwargs)
            if kwargs["VersionStage"] == "AWSCURRENT":
                raise TimeoutError("read timeout")

    SecretsManagerKeyStore(NAME, client=sm).save(KeySet(), None)
    store = SecretsManagerKeyStore(NAME, client=LosesAnswer(sm))  # type: ignore[arg-type]
    _, version = store.load()
    new = retired()
    new_version = store.save(new, version)
    assert store.load() == (new, new_version)


def test_other_switch_failures_are_keystore_errors(sm: Any) -> None:
    class Broken:
        def __init__(self, real: Any) -> None:
            self.real = real

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

        def update_secret_version_stage(self, **kwargs: Any) -> Any:
            exc = Exception("denied")
            exc.response = {"Error": {"Code": "AccessDeniedException"}}  # type: ignore[attr-defined]
            raise exc

    version = SecretsManagerKeyStore(NAME, client=sm).save(KeySet(), None)
    store = SecretsManagerKeyStore(NAME, client=Broken(sm))  # type: ignore[arg-type]
    with pytest.raises(KeyStoreError) as info:
        store.save(retired(), version)
    assert not isinstance(info.value, VersionConflict)
    assert "AccessDeniedException" in str(info.value)
    assert SecretsManagerKeyStore(NAME, client=sm).load() == (KeySet(), version)


def test_a_secret_created_without_a_value_is_filled(sm: Any) -> None:
    """Infrastructure code often creates the secret empty; the first save still is a CAS."""
    sm.create_secret(Name=NAME)
    store = SecretsManagerKeyStore(NAME, client=sm)
    assert store.load() == (KeySet(), None)
    first = retired()
    version = store.save(first, None)
    assert store.load() == (first, version)
    with pytest.raises(VersionConflict):
        store.save(retired(), None)  # now it has a value: a second "first write" loses
    assert store.load() == (first, version)


def test_botocore_debug_logs_carry_no_private_key(sm: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # A service host may have quieted botocore (configure_host_logging); DEBUG is what leaks.
    caplog.set_level(logging.DEBUG, logger="botocore")
    store = SecretsManagerKeyStore(NAME, client=sm)
    keyset = KeySet((generate_key(now=0.0, state=KeyState.CURRENT),))
    version = store.save(keyset, None)
    store.save(keyset.add(generate_key(now=1.0)), version)
    assert store.load()[0].current == keyset.current
    private_d = str(next(iter(keyset)).private_jwk["d"])  # type: ignore[index]
    assert "withheld" in caplog.text  # botocore did log these calls at DEBUG
    assert private_d not in caplog.text
