"""``s2s keys init|list|rotate|revoke|prune`` and ``s2s jwks``.

Every write goes through :func:`s2s.keys.store.update_keyset` (a compare-and-swap), so two
operators or an operator and a replica's own schedule never lose each other's keys. Output holds
public data only: kids, algorithms, states, times, public JWKs and KMS key ids.

KMS: ``init --signer aws-kms`` makes KMS keys; afterwards every command follows the keyset (a
keyset that signs with KMS gets its new keys in KMS), unless ``S2S_SIGNER`` says otherwise.
``prune`` schedules the KMS keys of the records it drops for deletion after
``S2S_KMS_DELETION_WINDOW_DAYS`` (7-30, default 30); KMS keys made for a write that lost a
concurrent-change race are scheduled the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from s2s.cli import emit, main, missing_location, table
from s2s.cli.errors import EmptyKeyset, KeysetExists, KmsDeletionFailed
from s2s.clock import Clock, system_clock
from s2s.errors import ConfigError
from s2s.keys._factories import SIGNERS, KeyFactories
from s2s.keys._kms import KMS_ALGS
from s2s.keys._model import SIGNING_ALGS, KeySet, KeyState, SigningKey
from s2s.keys._rotation import (
    RotationPolicy,
    alg_for,
    ensure_keys,
    format_time,
    prune,
    revoke,
    rotate,
    safe_at,
    with_alg,
)
from s2s.keys._store import KeyStore, open_keystore, update_keyset
from s2s.keys.errors import RotationRefused
from s2s.observe import cli_observer, report_key_changes

__all__ = ["jwks_command", "keys_group"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_STORE = "file://keys"


def _store_option(f: F) -> F:
    return click.option(
        "--store",
        envvar="S2S_KEYSTORE",
        default=DEFAULT_STORE,
        show_default=True,
        help="Key store: file://DIR or aws-sm://SECRET_NAME (env S2S_KEYSTORE).",
    )(f)


def _json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)


def _clock() -> Clock:
    # Tests pass a FakeClock as ``obj={"clock": ...}``; everyone else gets the system clock.
    obj = click.get_current_context().find_root().obj
    if isinstance(obj, dict) and obj.get("clock") is not None:
        clock: Clock = obj["clock"]
        return clock
    return system_clock


def _policy(alg: str | None = None) -> RotationPolicy:
    policy = RotationPolicy.from_env()
    return with_alg(policy, alg) if alg is not None else policy


def _factories(signer: str | None = None) -> KeyFactories:
    """The key factories: ``signer`` (an option), else ``S2S_SIGNER``, else follow the keyset."""
    return KeyFactories.from_env(signer=signer)


def _write(store: KeyStore, change: _Recorder, factories: KeyFactories) -> KeySet:
    """``update_keyset`` plus clean-up of KMS keys: those no saved keyset holds, and those that
    left the JWKS (retired or revoked), scheduled for deletion after the pending window."""
    try:
        saved = update_keyset(store, change)
    except BaseException:
        # Only what the store really holds counts: a write may have landed before the error.
        try:
            held, _ = store.load()
        except Exception:
            held = None
        if held is not None:
            factories.settle(held)
        raise
    factories.settle(saved)
    factories.retire(change.before, saved)
    report_key_changes(cli_observer(), change.before, saved, "cli")
    return saved


def _require_keys(store: KeyStore, keyset: KeySet) -> KeySet:
    if not len(keyset):
        raise EmptyKeyset(f"{store.url} holds no keys; run `s2s keys init --store {store.url}` first")
    return keyset


def _milestone(key: SigningKey, policy: RotationPolicy) -> str:
    """The next thing that happens to ``key`` on its own."""
    if key.state is KeyState.NEXT:
        return f"may sign from {format_time(safe_at(key, policy))}"
    if key.state is KeyState.CURRENT:
        if not policy.rotate_every:
            return "no scheduled rotation"
        since = key.activated_at if key.activated_at is not None else key.created_at
        return f"scheduled rotation {format_time(since + policy.rotate_every)}"
    if key.state is KeyState.PREVIOUS:
        since = key.deactivated_at if key.deactivated_at is not None else key.created_at
        return f"unpublished from {format_time(since + policy.previous_keep)}"
    ended = key.retired_at if key.state is KeyState.RETIRED else key.revoked_at
    return "" if ended is None else f"prunable from {format_time(ended + policy.retention)}"


def _key_rows(keyset: KeySet, policy: RotationPolicy) -> list[list[Any]]:
    order = {KeyState.CURRENT: 0, KeyState.NEXT: 1, KeyState.PREVIOUS: 2, KeyState.RETIRED: 3}
    keys = sorted(keyset, key=lambda k: (order.get(k.state, 4), -k.created_at))
    return [
        [
            k.kid,
            k.alg,
            k.state.value,
            "yes" if k.published else "no",
            format_time(k.created_at),
            _milestone(k, policy),
        ]
        for k in keys
    ]


def _print_keys(keyset: KeySet, policy: RotationPolicy) -> None:
    table(_key_rows(keyset, policy), ["KID", "ALG", "STATE", "IN JWKS", "CREATED", "NEXT EVENT"])


def _keys_json(keyset: KeySet) -> list[dict[str, Any]]:
    return [{**k.to_public_dict(), "published": k.published} for k in keyset]


def _changes(before: KeySet, after: KeySet) -> list[dict[str, Any]]:
    old = {k.kid: k for k in before}
    out: list[dict[str, Any]] = []
    for key in after:
        was = old.pop(key.kid, None)
        if was is None:
            out.append({"kid": key.kid, "alg": key.alg, "from": None, "to": key.state.value})
        elif was.state is not key.state:
            out.append({"kid": key.kid, "alg": key.alg, "from": was.state.value, "to": key.state.value})
    out.extend({"kid": k.kid, "alg": k.alg, "from": k.state.value, "to": None} for k in old.values())
    return out


def _describe(change: dict[str, Any]) -> str:
    if change["from"] is None:
        return f"new {change['alg']} key {change['kid']} -> {change['to']}"
    if change["to"] is None:
        return f"{change['kid']}: {change['from']} -> deleted"
    return f"{change['kid']}: {change['from']} -> {change['to']}"


def _print_changes(changes: list[dict[str, Any]], prefix: str = "") -> None:
    if not changes:
        click.echo(f"{prefix}no change")
    for change in changes:
        click.echo(f"{prefix}{_describe(change)}")


def _cli_hint(description: str) -> str:
    return description.replace("(or force it,", "(or use --force")


class _Recorder:
    """Wraps a keyset change to remember the keyset it last applied to (for reporting)."""

    def __init__(self, change: Callable[[KeySet], KeySet]) -> None:
        self._change = change
        self.before = KeySet()

    def __call__(self, keyset: KeySet) -> KeySet:
        self.before = keyset
        return self._change(keyset)


@main.group("keys")
def keys_group() -> None:
    """Create, list, rotate, revoke and prune signing keys."""


@keys_group.command("init")
@_store_option
@_json_option
@click.option(
    "--alg",
    type=click.Choice(list(SIGNING_ALGS)),
    default=None,
    help="Signing algorithm (default: S2S_ALG or ES256; aws-kms supports ES256 and RS256).",
)
@click.option(
    "--signer",
    type=click.Choice(SIGNERS),
    default=None,
    help="Where private keys live: local (in the key store) or aws-kms (default: S2S_SIGNER or local).",
)
def init_command(store: str, as_json: bool, alg: str | None, signer: str | None) -> None:
    """Create the first keys: a current key that signs at once and a next key."""
    ks = open_keystore(store)
    policy = _policy(alg=alg)
    now = _clock().now()
    factories = KeyFactories.from_env(signer=signer, default="local")
    if factories.signer == "aws-kms" and alg_for(KeySet(), policy) not in KMS_ALGS:
        raise ConfigError(f"--signer aws-kms supports --alg {' or '.join(KMS_ALGS)}")

    def create(keyset: KeySet) -> KeySet:
        if len(keyset):
            raise KeysetExists(
                f"{ks.url} already holds {len(keyset)} key(s); init only fills an empty store "
                "(use `s2s keys rotate` to change keys)"
            )
        return ensure_keys(keyset, now, policy, factories.for_keyset(keyset))

    keyset = _write(ks, _Recorder(create), factories)

    def human() -> None:
        click.echo(f"initialised {ks.url} with {alg_for(keyset, policy)} keys")
        _print_keys(keyset, policy)

    emit({"store": ks.url, "keys": _keys_json(keyset)}, as_json, human)


@keys_group.command("list")
@_store_option
@_json_option
def list_command(store: str, as_json: bool) -> None:
    """Show every key with its state and what happens to it next."""
    ks = open_keystore(store)
    keyset, version = ks.load()
    if version is None:  # nothing was ever saved there (a typo, or the wrong directory)
        missing_location("key store", ks.url, f"s2s keys init --store {ks.url}", "--store / S2S_KEYSTORE")
    policy = _policy()

    def human() -> None:
        if not len(keyset):
            click.echo(f"no keys in {ks.url}; run `s2s keys init --store {ks.url}`", err=True)
            return
        _print_keys(keyset, policy)

    emit({"store": ks.url, "version": version, "keys": _keys_json(keyset)}, as_json, human)


@keys_group.command("rotate")
@_store_option
@_json_option
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@click.option(
    "--force",
    is_flag=True,
    help="Emergency only: promote the next key even if verifiers may not have fetched it yet.",
)
def rotate_command(store: str, as_json: bool, dry_run: bool, force: bool) -> None:
    """Promote the next key to current; the current key stays published as previous."""
    ks = open_keystore(store)
    now = _clock().now()
    if dry_run:
        keyset, _ = ks.load()
        keyset = _require_keys(ks, keyset)
        policy = _policy()
        try:
            changes = _changes(keyset, rotate(keyset, now, policy, force=force))
        except RotationRefused as exc:
            raise RotationRefused(_cli_hint(exc.description), exc.safe_at) from None
        emit(
            {"store": ks.url, "dry_run": True, "changes": changes},
            as_json,
            lambda: _print_changes(changes, "would: "),
        )
        return

    early: list[tuple[SigningKey, RotationPolicy]] = []
    factories = _factories()

    def change(keyset: KeySet) -> KeySet:
        keyset = _require_keys(ks, keyset)
        policy = _policy()
        nxt = keyset.next
        early.clear()  # a retry after a conflict starts from a fresh keyset
        if force and nxt is not None and now < safe_at(nxt, policy):
            early.append((nxt, policy))
        return rotate(keyset, now, policy, force=force, new_key=factories.for_keyset(keyset))

    recorder = _Recorder(change)
    try:
        keyset = _write(ks, recorder, factories)
    except RotationRefused as exc:
        raise RotationRefused(_cli_hint(exc.description), exc.safe_at) from None
    changes = _changes(recorder.before, keyset)
    for nxt, policy in early:
        age, reach = now - nxt.created_at, policy.poll_interval + policy.jwks_max_age
        risk = (
            f"verifiers holding a JWKS fetched before it appeared (up to poll_interval + jwks_max_age = "
            f"{reach:g}s old) reject its tokens until they refetch"
            if age < reach
            else f"verifiers caching the JWKS longer than the {reach:g}s this policy assumes may reject "
            "its tokens until they refetch"
        )
        click.echo(
            f"s2s: warning: forced rotation: {nxt.kid} signs although it was published only {age:.0f}s "
            f"ago, less than publish_lead {policy.publish_lead:g}s; {risk}.",
            err=True,
        )

    def human() -> None:
        _print_changes(changes)
        _print_keys(keyset, _policy())

    emit({"store": ks.url, "dry_run": False, "changes": changes, "keys": _keys_json(keyset)}, as_json, human)


@keys_group.command("revoke")
@click.argument("kid", required=False)
@click.option(
    "--kid",
    "kid_option",
    metavar="KID",
    help="The key to revoke; use this (or `--` before KID) for a kid that starts with '-'.",
)
@_store_option
@_json_option
def revoke_command(kid: str | None, kid_option: str | None, store: str, as_json: bool) -> None:
    """Emergency: remove KID from the JWKS now. Revoking the current key promotes the next key.

    A kid is a base64url thumbprint and may start with '-', which would read as an option:
    write `s2s keys revoke --kid KID` (or `s2s keys revoke -- KID`).
    """
    if (kid is None) == (kid_option is None):
        raise click.UsageError("give the key to revoke once: KID or --kid KID")
    kid = kid if kid is not None else kid_option
    assert kid is not None
    ks = open_keystore(store)
    now = _clock().now()
    factories = _factories()

    def change(keyset: KeySet) -> KeySet:
        return revoke(_require_keys(ks, keyset), kid, now, _policy(), factories.for_keyset(keyset))

    recorder = _Recorder(change)
    keyset = _write(ks, recorder, factories)
    changes = _changes(recorder.before, keyset)
    was = recorder.before.get(kid).state
    promoted = keyset.current
    policy = _policy()

    def human() -> None:
        if not changes:
            click.echo(f"{kid} was already revoked")
            return
        _print_changes(changes)
        if was is KeyState.CURRENT and promoted is not None and now < safe_at(promoted, policy):
            click.echo(
                f"s2s: warning: {promoted.kid} signs now although it was published only "
                f"{now - promoted.created_at:.0f}s ago; verifiers with an older cached JWKS reject its "
                "tokens until they refetch",
                err=True,
            )

    emit({"store": ks.url, "changes": changes, "keys": _keys_json(keyset)}, as_json, human)


@keys_group.command("prune")
@_store_option
@_json_option
def prune_command(store: str, as_json: bool) -> None:
    """Delete retired and revoked keys older than the retention period.

    The KMS keys of pruned records are scheduled for deletion after the pending window
    (S2S_KMS_DELETION_WINDOW_DAYS, 7-30 days), never deleted at once.
    """
    ks = open_keystore(store)
    now = _clock().now()
    recorder = _Recorder(lambda keyset: prune(_require_keys(ks, keyset), now, _policy()))
    keyset = update_keyset(ks, recorder)
    report_key_changes(cli_observer(), recorder.before, keyset, "cli")
    pruned = [c["kid"] for c in _changes(recorder.before, keyset) if c["to"] is None]
    factories = _factories()
    # Only after the save: a KMS key is scheduled once no keyset record points at it any more.
    dropped = factories.dropped(recorder.before, keyset)
    failed = factories.kms.schedule_deletion(dropped) if dropped else []
    scheduled = [key_id for key_id in dropped if key_id not in failed]
    window = factories.kms_deletion_window_days if dropped else None

    def human() -> None:
        if not pruned:
            click.echo("nothing to prune")
        for kid in pruned:
            click.echo(f"pruned {kid}")
        for key_id in scheduled:
            click.echo(f"KMS key {key_id} scheduled for deletion in {window} days")

    emit(
        {
            "store": ks.url,
            "pruned": pruned,
            "kms_deletion_scheduled": scheduled,
            "kms_deletion_window_days": window,
            "keys": _keys_json(keyset),
        },
        as_json,
        human,
    )
    if failed:
        raise KmsDeletionFailed(
            f"pruned, but could not schedule deletion of KMS key(s) {', '.join(failed)}; "
            "schedule it with `aws kms schedule-key-deletion` or rerun later"
        )


@main.command("jwks")
@_store_option
def jwks_command(store: str) -> None:
    """Print the public JWKS (next, current and previous keys) as served by the issuer."""
    keyset, _ = open_keystore(store).load()
    click.echo(json.dumps(keyset.jwks(), indent=2))
