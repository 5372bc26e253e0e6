"""Issuer state shared by replicas in one DynamoDB table (adapter: needs boto3).

Table: partition key ``pk`` (string), no sort key, on-demand billing, TTL on the numeric attribute
``ttl`` (:func:`create_state_table` makes it). Item keys are SHA-256 digests, so client ids and
``jti`` values never appear in the table and any length fits.

* Replay (``seen_or_add``): one conditional ``PutItem`` of ``j#<digest>`` with
  ``attribute_not_exists(pk) OR #exp <= :now``. Exactly one replica wins the write; every other
  sees ``ConditionalCheckFailedException`` and refuses the assertion. DynamoDB TTL deletes expired
  items only eventually (typically within days), so the condition compares ``exp`` itself and an
  expired item is simply overwritten.
* Rate limits: fixed-window counters, the same for the issuance budget (``acquire``, items
  ``r#...``) and the failure budgets (``record_failure`` / ``failure_wait``, items ``f#...``, see
  :mod:`s2s.issuer._ratelimit`). Issuance: a fixed-window counter per client. Each window lasts
  ``burst / rate`` seconds and admits ``floor(burst)`` requests, so the long-run rate is ``rate``
  per second, as with the in-memory token bucket. One ``UpdateItem`` of ``r#<digest>#<window>``
  with ``ADD #n :one`` under ``attribute_not_exists(#n) OR #n < :limit``: the increment and the
  check are one atomic step, so concurrent replicas never admit more than the limit in a window.
  Unlike a token bucket, a client may use one window's budget at its end and the next at its start
  (up to ``2 * burst`` in a short span); that is the price of a single round trip and no
  read-modify-write. Windows follow the wall clock (shared by all replicas).

Any other DynamoDB failure fails closed with :class:`~s2s.issuer.errors.StateUnavailable` (the
token endpoint answers 503).
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import TYPE_CHECKING

from s2s.aws import AwsError, AwsService, AwsSettings
from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError
from s2s.issuer._ratelimit import GLOBAL_FAILURES, FailureBudget
from s2s.issuer.errors import StateUnavailable

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["TTL_ATTRIBUTE", "DynamoDBState", "create_state_table"]

log = logging.getLogger("s2s.issuer.state")

TTL_ATTRIBUTE = "ttl"
_CONFLICT = "ConditionalCheckFailedException"
# TTL deletion keeps no promise on timing; a margin keeps items a little past their use anyway.
_TTL_MARGIN = 60


class _DynamoDB(AwsService):
    service = "dynamodb"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class DynamoDBState:
    """Replay cache and rate limiter in the DynamoDB table ``table``."""

    # Calls go over the network: the issuer runs its token requests in a worker pool.
    blocks_on_io = True

    def __init__(
        self,
        table: str,
        *,
        rate: float,
        burst: float,
        clock: Clock = system_clock,
        client: DynamoDBClient | None = None,
        region: str | None = None,
        session: boto3.Session | None = None,
        aws: AwsSettings | None = None,
        failures: FailureBudget | None = None,
    ) -> None:
        if not table:
            raise ConfigError("the DynamoDB state store needs a table name")
        if rate <= 0 or burst < 1:
            raise ConfigError("rate must be > 0 and burst >= 1")
        self.table = table
        self.url = f"dynamodb://{table}"
        self.limit = math.floor(burst)
        self.window = burst / rate
        failures = failures or FailureBudget()
        self._failure_limit = math.floor(failures.burst)
        self._failure_window = failures.burst / failures.rate
        self._global_limit = math.floor(failures.global_burst)
        self._global_window = failures.global_burst / failures.global_rate
        self._clock = clock
        self._db = _DynamoDB(client, region=region, session=session, settings=aws)

    def __repr__(self) -> str:
        return f"DynamoDBState({self.table!r})"

    @property
    def client(self) -> DynamoDBClient:
        client: DynamoDBClient = self._db.client
        return client

    def _unavailable(self, action: str, exc: AwsError) -> StateUnavailable:
        log.error("DynamoDB state %s: %s failed: %s", self.table, action, exc.reason)
        return StateUnavailable()

    def probe(self) -> None:
        """Raise :class:`StateUnavailable` unless the table answers a read (the readiness probe)."""
        try:
            self._db.call("get_item", TableName=self.table, Key={"pk": {"S": "h#probe"}})
        except AwsError as exc:
            raise StateUnavailable(f"DynamoDB table {self.table!r}: {exc.reason}") from None

    def seen_or_add(self, key: str, expires_at: float) -> bool:
        now = self._clock.now()
        try:
            self._db.call(
                "put_item",
                TableName=self.table,
                Item={
                    "pk": {"S": "j#" + _digest(key)},
                    "exp": {"N": repr(float(expires_at))},
                    TTL_ATTRIBUTE: {"N": str(math.ceil(expires_at) + _TTL_MARGIN)},
                },
                ConditionExpression="attribute_not_exists(pk) OR #exp <= :now",
                ExpressionAttributeNames={"#exp": "exp"},
                ExpressionAttributeValues={":now": {"N": repr(float(now))}},
            )
        except AwsError as exc:
            if exc.code == _CONFLICT:
                return True
            raise self._unavailable("replay check", exc) from None
        return False

    def acquire(self, key: str) -> float:
        return self._take("r#", key, self.limit, self.window)

    def failure_wait(self, key: str) -> float:
        return self._peek("f#", key, self._failure_limit, self._failure_window)

    def record_failure(self, key: str) -> float:
        mine = self._take("f#", key, self._failure_limit, self._failure_window)
        every = self._take("f#", GLOBAL_FAILURES, self._global_limit, self._global_window)
        return max(mine, every)

    def _window(self, key: str, prefix: str, window: float) -> tuple[str, float, float]:
        now = self._clock.now()
        index = math.floor(now / window)
        return f"{prefix}{_digest(key)}#{index}", now, (index + 1) * window

    def _peek(self, prefix: str, key: str, limit: int, window: float) -> float:
        pk, now, ends = self._window(key, prefix, window)
        try:
            item = self._db.call(
                "get_item", TableName=self.table, Key={"pk": {"S": pk}}, ConsistentRead=True
            ).get("Item")
        except AwsError as exc:
            raise self._unavailable("rate limit", exc) from None
        used = int(item["n"]["N"]) if item and "n" in item else 0
        return 0.0 if used < limit else max(ends - now, 0.001)

    def _take(self, prefix: str, key: str, limit: int, window: float) -> float:
        pk, now, ends = self._window(key, prefix, window)
        try:
            self._db.call(
                "update_item",
                TableName=self.table,
                Key={"pk": {"S": pk}},
                UpdateExpression="ADD #n :one SET #ttl = :ttl",
                ConditionExpression="attribute_not_exists(#n) OR #n < :limit",
                ExpressionAttributeNames={"#n": "n", "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(limit)},
                    ":ttl": {"N": str(math.ceil(ends) + _TTL_MARGIN)},
                },
            )
        except AwsError as exc:
            if exc.code == _CONFLICT:
                return max(ends - now, 0.001)
            raise self._unavailable("rate limit", exc) from None
        return 0.0


def create_state_table(
    table: str,
    client: DynamoDBClient | None = None,
    *,
    region: str | None = None,
    session: boto3.Session | None = None,
) -> bool:
    """Create the state table (on-demand, TTL on ``ttl``) if missing; True if it was created.

    Safe to run again: an existing table only gets its TTL setting checked.
    """
    db = _DynamoDB(client, region=region, session=session)
    created = True
    try:
        db.call(
            "create_table",
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except AwsError as exc:
        if exc.code != "ResourceInUseException":
            raise ConfigError(f"cannot create DynamoDB table {table!r}: {exc.reason}") from None
        created = False
    try:
        # The waiter polls describe_table itself (not through the seam): setup, not request path.
        db.client.get_waiter("table_exists").wait(
            TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        ttl = db.call("describe_time_to_live", TableName=table)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            db.call(
                "update_time_to_live",
                TableName=table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )
    except AwsError as exc:
        raise ConfigError(f"cannot set up DynamoDB table {table!r}: {exc.reason}") from None
    except Exception as exc:  # the waiter's own failure (WaiterError): its type is enough
        raise ConfigError(f"cannot set up DynamoDB table {table!r}: {type(exc).__name__}") from None
    return created
