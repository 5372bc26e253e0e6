"""compose.yaml, compose.aws.yaml, the Dockerfile and .dockerignore, checked without a Docker engine.

The Compose files are validated against the Compose Specification's JSON schema (the copy of
``compose-spec/compose-spec``'s ``schema/compose-spec.json`` that ``check-jsonschema`` ships, Apache
2.0) and then against what the schema cannot know: dependencies that exist, healthchecks where
others wait on them, replicas that agree on the issuer and its stores, loopback-only ports, no
secret but moto's dummies, and commands whose flags the real CLI accepts.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import click
import jsonschema
import pytest
import yaml
from check_jsonschema.builtin_schemas import get_builtin_schema

from s2s.cli import main as cli_main
from s2s.cli._serve import DEMO_AUDIENCE
from s2s.issuer import IssuerSettings
from s2s.verify import VerifierConfig
from tests.support import free_port

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
COMPOSE_AWS = ROOT / "compose.aws.yaml"
MOTO_DUMMY = "testing"


class Reset:
    """Compose's ``!reset``: drop the value the earlier file set."""


class Override:
    """Compose's ``!override``: replace the earlier value instead of merging with it."""

    def __init__(self, value: Any) -> None:
        self.value = value


class ComposeLoader(yaml.SafeLoader):
    """YAML as Compose reads it: merge keys (``<<``) and the ``!reset`` / ``!override`` tags."""


def _reset(loader: yaml.SafeLoader, node: yaml.Node) -> Reset:
    return Reset()


def _override(loader: yaml.SafeLoader, node: yaml.Node) -> Override:
    if isinstance(node, yaml.MappingNode):
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    return Override(loader.construct_scalar(node))  # type: ignore[arg-type]


ComposeLoader.add_constructor("!reset", _reset)
ComposeLoader.add_constructor("!override", _override)


def load(path: Path) -> dict[str, Any]:
    doc = yaml.load(path.read_text("utf-8"), Loader=ComposeLoader)
    assert isinstance(doc, dict)
    return doc


def merge(base: Any, over: Any) -> Any:
    """The subset of Compose's merge rules these files use: maps merge, lists append, scalars
    replace, ``!reset`` removes, ``!override`` replaces (compose-spec "merge")."""
    if isinstance(over, Override):
        return over.value
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            if isinstance(value, Reset):
                out.pop(key, None)
            else:
                out[key] = merge(out[key], value) if key in out else merge(None, value)
        return out
    if isinstance(over, dict):
        return {k: merge(None, v) for k, v in over.items() if not isinstance(v, Reset)}
    if isinstance(base, list) and isinstance(over, list):
        return base + over
    return over


def tags_left(doc: Any) -> Iterator[Any]:
    if isinstance(doc, Reset | Override):
        yield doc
    elif isinstance(doc, dict):
        for value in doc.values():
            yield from tags_left(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from tags_left(value)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return get_builtin_schema("vendor.compose-spec")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE)


@pytest.fixture(scope="module")
def compose_real_aws(compose: dict[str, Any]) -> dict[str, Any]:
    merged = merge(copy.deepcopy(compose), load(COMPOSE_AWS))
    assert not list(tags_left(merged))
    return merged


def schema_errors(schema: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = doc["services"]
    assert isinstance(out, dict)
    return out


def env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    return {k: ("" if v is None else str(v)) for k, v in raw.items()}


_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$\$")


def interpolate(value: str, environ: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``$$``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op") or "", match.group("arg") or ""
        present = name in environ and (environ[name] != "" or not op.startswith(":"))
        if present:
            return environ[name]
        if op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op.endswith("-") else ""

    return _VARIABLE.sub(one, value)


def resolved_env(service: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, str]:
    """The container's environment as `docker compose up` makes it from the host's ``environ``."""
    return {k: interpolate(v, environ or {}) for k, v in env(service).items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def issuers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services(doc).items() if command(s)[:2] == ["s2s", "serve"]}


def init_script(doc: dict[str, Any]) -> str:
    """The job's shell script as the container gets it (Compose interpolates commands too)."""
    cmd = command(services(doc)["init"])
    assert cmd[0] == "sh"
    assert cmd[1].startswith("-") and "e" in cmd[1]
    return interpolate(cmd[2], {})


def resolve_cli(argv: list[str]) -> tuple[click.Command, click.Context]:
    """Parse argv with the real `s2s` CLI (unknown or malformed options raise), invoking nothing."""
    assert argv[0] == "s2s"
    cmd: click.Command = cli_main
    ctx = cmd.make_context("s2s", argv[1:])
    while isinstance(cmd, click.Group):
        name, sub, rest = cmd.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        assert sub is not None, f"no command {name!r}"
        cmd = sub
        ctx = cmd.make_context(sub.name, rest, parent=ctx)
    return cmd, ctx


# -- the Compose Specification ----------------------------------------------------------------


def test_schema_is_the_compose_specification(schema: dict[str, Any]) -> None:
    assert schema["title"] == "Compose Specification"
    assert {"services", "networks", "volumes", "secrets", "configs"} <= set(schema["properties"])


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_AWS], ids=lambda p: p.name)
def test_file_is_valid_compose(schema: dict[str, Any], path: Path) -> None:
    doc = load(path)
    assert schema_errors(schema, merge(None, doc)) == []


def test_merged_real_aws_file_is_valid_compose(
    schema: dict[str, Any], compose_real_aws: dict[str, Any]
) -> None:
    assert schema_errors(schema, compose_real_aws) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("servics",), {}),
        (("services", "moto", "image"), ["motoserver/moto"]),
        (("services", "moto", "healthcheck", "intervl"), "3s"),
        (("services", "init", "depends_on", "moto", "condition"), "service_finished"),
        (("services", "issuer-1", "restart"), ["always"]),
    ],
    ids=["unknown-top-level", "image-list", "healthcheck-typo", "bad-condition", "restart-list"],
)
def test_schema_check_rejects_broken_files(
    schema: dict[str, Any], compose: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    broken = copy.deepcopy(compose)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert schema_errors(schema, broken)


def test_check_jsonschema_cli_accepts_compose_yaml_and_rejects_a_broken_copy(tmp_path: Path) -> None:
    # The same check as a command a developer can run: no network (the schema is vendored).
    cli = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    ok = subprocess.run([*cli, str(COMPOSE)], check=False, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text("utf-8").replace("healthcheck:", "healthchek:", 1), "utf-8")
    bad = subprocess.run([*cli, str(broken)], check=False, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "healthchek" in bad.stdout + bad.stderr


# -- what the schema cannot check ---------------------------------------------------------------


def test_depends_on_targets_exist_and_their_conditions_can_be_met(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    for name, service in all_services.items():
        deps = service.get("depends_on", {})
        deps = {d: {"condition": "service_started"} for d in deps} if isinstance(deps, list) else deps
        for target, spec in deps.items():
            assert target in all_services, f"{name} depends on missing service {target}"
            assert target != name
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in all_services[target], f"{name} waits for {target}'s health"
            if spec["condition"] == "service_completed_successfully":
                assert all_services[target].get("restart", "no") == "no", f"{target} must be one-shot"


def test_start_order_is_moto_then_init_then_issuers_then_resource(compose: dict[str, Any]) -> None:
    s = services(compose)
    assert s["init"]["depends_on"] == {"moto": {"condition": "service_healthy"}}
    for name in issuers(compose):
        assert s[name]["depends_on"] == {"init": {"condition": "service_completed_successfully"}}
    conditions = {n: d["condition"] for n, d in s["resource"]["depends_on"].items()}
    assert conditions == dict.fromkeys(issuers(compose), "service_healthy")


@pytest.mark.parametrize("name", ["moto", "issuer-1", "issuer-2", "resource"])
def test_long_running_services_have_healthchecks(compose: dict[str, Any], name: str) -> None:
    check = services(compose)[name]["healthcheck"]
    assert check["test"][0] == "CMD"
    assert not check.get("disable", False)
    probe = check["test"][-1]
    assert "http://127.0.0.1:" in probe
    if name.startswith("issuer"):
        # Ready means "holds a key it may sign with", which /health alone does not say.
        assert "/ready" in probe


def test_two_issuer_replicas_share_issuer_url_and_every_store(compose: dict[str, Any]) -> None:
    replicas = issuers(compose)
    assert len(replicas) >= 2
    envs = [env(s) for s in replicas.values()]
    assert all(e == envs[0] for e in envs), "replicas must be configured identically"
    e = envs[0]
    assert e["S2S_KEYSTORE"].startswith("aws-sm://")
    assert e["S2S_CLIENTS"].startswith("aws-sm://")
    assert e["S2S_STATE"].startswith("dynamodb://")
    assert e["S2S_CREATE_KEYS"] == "false"
    # The one-shot job fills the very stores the replicas read.
    init_env = env(services(compose)["init"])
    for key in ("S2S_ISSUER", "S2S_KEYSTORE", "S2S_CLIENTS", "S2S_STATE", "AWS_ENDPOINT_URL", "AWS_REGION"):
        assert init_env[key] == e[key], key


@pytest.mark.parametrize("signer", [None, "local", "aws-kms"])
def test_issuer_environment_is_accepted_by_the_issuer_settings(
    compose: dict[str, Any], signer: str | None
) -> None:
    host = {} if signer is None else {"S2S_SIGNER": signer}
    e = resolved_env(next(iter(issuers(compose).values())), host)
    settings = IssuerSettings.from_env(environ=e)
    assert settings.issuer == e["S2S_ISSUER"]
    assert settings.keystore == e["S2S_KEYSTORE"]
    assert settings.clients == e["S2S_CLIENTS"]
    assert settings.state == e["S2S_STATE"]
    assert settings.create_keys is False
    assert settings.signer == (signer or "local")


def test_interpolation_helper_follows_compose() -> None:
    assert interpolate("${A:-x}", {}) == "x"
    assert interpolate("${A:-x}", {"A": ""}) == "x"
    assert interpolate("${A-x}", {"A": ""}) == ""
    assert interpolate("${A:-x}/$${B}", {"A": "a"}) == "a/${B}"
    with pytest.raises(KeyError, match="A: set it"):
        interpolate("${A:?set it}", {})


def test_resource_service_trusts_the_issuers_and_the_demo_audience(compose: dict[str, Any]) -> None:
    resource = services(compose)["resource"]
    e = env(resource)
    # The verifier's own rules (https, or http to loopback only) accept this setup.
    config = VerifierConfig.from_env(environ=e)
    issuer_url = env(next(iter(issuers(compose).values())))["S2S_ISSUER"]
    assert e["S2S_VERIFIER_ISSUER"] == issuer_url
    assert config.issuer == issuer_url
    # Plain http to 127.0.0.1 reaches an issuer only because the resource service lives in that
    # issuer's network namespace, and on the port that issuer listens on.
    parts = urlsplit(issuer_url)
    assert parts.hostname == "127.0.0.1"
    mode, _, host_service = resource["network_mode"].partition(":")
    assert mode == "service"
    assert host_service in issuers(compose)
    _, serve = resolve_cli(command(services(compose)[host_service]))
    assert serve.params["port"] == parts.port
    assert resource["depends_on"][host_service].get("restart") is True
    # Its own port is published by the namespace owner, and does not clash with the issuer's.
    uvicorn_port = int(command(resource)[command(resource).index("--port") + 1])
    assert uvicorn_port != parts.port
    owner_ports = [str(p) for p in services(compose)[host_service]["ports"]]
    assert any(p.endswith(f":{uvicorn_port}") for p in owner_ports)
    assert f"127.0.0.1:{uvicorn_port}/health" in resource["healthcheck"]["test"][-1]
    add_line = next(line for line in init_script(compose).splitlines() if "s2s clients add" in line)
    _, ctx = resolve_cli(shlex.split(add_line.strip()))
    assert ctx.params["client_id"] == "demo"
    assert e["S2S_VERIFIER_AUDIENCE"] in ctx.params["audiences"]
    # The same demo audience as the local demo (`s2s serve --demo`, README, quickstart).
    assert e["S2S_VERIFIER_AUDIENCE"] == DEMO_AUDIENCE
    # uvicorn is given an app that exists.
    module, attr = command(resource)[1].split(":")
    assert importlib.util.find_spec(module) is not None
    assert attr in importlib.import_module(module).__all__


def test_issuer_commands_are_accepted_by_the_cli(compose: dict[str, Any]) -> None:
    for name, service in issuers(compose).items():
        cmd, ctx = resolve_cli(command(service))
        assert cmd.name == "serve", name
        assert ctx.params["host"] == "0.0.0.0"
        assert ctx.params["port"] == 8000
        health = service["healthcheck"]["test"][-1]
        assert f":{ctx.params['port']}/" in health


def test_init_script_uses_only_real_cli_flags_and_functions(compose: dict[str, Any]) -> None:
    script = init_script(compose)
    s2s_calls = re.findall(r"\bs2s [^|;\n]+", script)
    assert len(s2s_calls) >= 4
    # The shell expands variables from the job's environment before s2s sees them.
    init_env = resolved_env(services(compose)["init"])
    for call in s2s_calls:
        argv = [re.sub(r"\$\{(\w+)\}", lambda m: init_env[m.group(1)], a) for a in shlex.split(call)]
        # ...and s2s reads its S2S_* options from that environment too (`s2s state init`).
        with mock.patch.dict(os.environ, init_env):
            resolve_cli(argv)
    for module, name in re.findall(r"from ([\w.]+) import (\w+)", script):
        assert hasattr(importlib.import_module(module), name), f"{module}.{name}"
    # The state table comes from the CLI, which reads S2S_STATE like the issuers do.
    assert re.search(r"^\s*s2s state init\s*$", script, re.MULTILINE)
    assert env(services(compose)["init"])["S2S_STATE"].startswith("dynamodb://")


def published_ports(doc: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for name, service in services(doc).items():
        for port in service.get("ports", []):
            yield name, port


def test_every_published_port_is_bound_to_loopback(compose: dict[str, Any]) -> None:
    ports = list(published_ports(compose))
    assert {name for name, _ in ports} >= {"issuer-1", "issuer-2", "moto"}
    for name, port in ports:
        if isinstance(port, dict):
            assert port.get("host_ip") == "127.0.0.1", (name, port)
        else:
            assert str(port).startswith("127.0.0.1:"), (name, port)
            assert str(port).count(":") == 2, (name, port)
    hosts = [str(p).split(":")[1] for _, p in ports]
    assert len(hosts) == len(set(hosts)), "two services publish the same host port"


_SECRETISH = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|ACCESS_KEY|CREDENTIAL", re.IGNORECASE)


def test_no_secrets_only_moto_dummies(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    for name, service in all_services.items():
        e = env(service)
        for key, value in e.items():
            if _SECRETISH.search(key):
                assert value == MOTO_DUMMY, f"{name}: {key} holds something other than moto's dummy"
        if "AWS_ACCESS_KEY_ID" in e:
            # Dummy credentials only ever go to moto, never to AWS.
            assert urlsplit(e["AWS_ENDPOINT_URL"]).hostname == "moto", name
    text = COMPOSE.read_text("utf-8") + COMPOSE_AWS.read_text("utf-8")
    for marker in ("PRIVATE KEY", "AKIA", "ASIA", "client_secret=", "aws_secret_access_key"):
        assert marker not in text
    assert all(not str(s.get("image", "")).endswith(":latest") for s in all_services.values())
    assert ":" in all_services["moto"]["image"], "pin moto's image"


def test_real_aws_override_drops_moto_and_its_dummy_credentials(compose_real_aws: dict[str, Any]) -> None:
    s = services(compose_real_aws)
    assert "moto" in s["moto"]["profiles"], "moto must no longer start by default"
    for name, service in s.items():
        assert "moto" not in service.get("depends_on", {}), name
        e = env(service)
        assert "AWS_ENDPOINT_URL" not in e, name
        assert "AWS_ACCESS_KEY_ID" not in e, name
        assert "AWS_SECRET_ACCESS_KEY" not in e, name
    for name in ["init", *issuers(compose_real_aws)]:
        e = env(s[name])
        assert e["AWS_REGION"].startswith("${AWS_REGION:?"), "the region must be chosen, not defaulted"
        assert e["AWS_PROFILE"].startswith("${AWS_PROFILE")
        assert any(v.endswith("/home/s2s/.aws:ro") for v in s[name]["volumes"]), name
    # Everything else (issuer URL, stores) is unchanged from the moto setup.
    replicas = [env(r) for r in issuers(compose_real_aws).values()]
    assert all(r == replicas[0] for r in replicas)
    assert s["init"].get("depends_on", {}) == {}


# -- the init job, run for real against moto ----------------------------------------------------


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto's backends are process-wide: without a reset, a secret from an earlier test is still there.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
    try:
        yield endpoint
    finally:
        urllib.request.urlopen(
            urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10
        )
        server.stop()


@pytest.mark.parametrize("signer", [None, "aws-kms"])
def test_init_job_creates_keys_and_demo_client_once(
    compose: dict[str, Any], moto_endpoint: str, tmp_path: Path, signer: str | None
) -> None:
    # As `docker compose up` (or `S2S_SIGNER=aws-kms docker compose up`) runs it, against moto.
    service_env = resolved_env(services(compose)["init"], {} if signer is None else {"S2S_SIGNER": signer})
    bin_dir = Path(sys.executable).parent
    run_env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        **service_env,
        "AWS_ENDPOINT_URL": moto_endpoint,
    }
    script = init_script(compose)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-ec", script],
            env=run_env,
            cwd=tmp_path,
            check=False,
            capture_output=True,
            text=True,
            timeout=180,
        )

    first = run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "client_secret:" in first.stdout
    listing = _keys_json(run_env, tmp_path)
    kids = sorted(re.findall(r'"kid": "([^"]+)"', listing))
    assert len(kids) >= 2
    kms_keys = re.findall(r'"kms_key_id": "([^"]+)"', listing)
    assert len(kms_keys) == (len(kids) if signer == "aws-kms" else 0)

    second = run()
    assert second.returncode == 0, second.stdout + second.stderr
    assert "keyset exists" in second.stdout
    assert "client demo exists" in second.stdout
    assert "client_secret" not in second.stdout + second.stderr
    assert sorted(re.findall(r'"kid": "([^"]+)"', _keys_json(run_env, tmp_path))) == kids


def _keys_json(run_env: dict[str, str], cwd: Path) -> str:
    out = subprocess.run(
        ["s2s", "keys", "list", "--json"],
        env=run_env,
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


# -- Dockerfile and .dockerignore -----------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text("utf-8").replace("\\\n", " ")
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_runs_as_non_root_from_a_pinned_slim_python() -> None:
    steps = dockerfile_instructions()
    base = [rest for word, rest in steps if word == "FROM"]
    assert len(base) == 1
    assert re.fullmatch(r"python:3\.1[1-9]-slim", base[0])
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    # Everything after the last USER runs as that user, including CMD.
    last_user = max(i for i, (word, _) in enumerate(steps) if word == "USER")
    assert [word for word, _ in steps[last_user:]].count("RUN") == 0
    # Reproducible: the lock file, then s2s itself without resolving anything else.
    runs = [rest for word, rest in steps if word == "RUN" and "pip install" in rest]
    assert runs == ["pip install --no-deps -r requirements/image.txt", "pip install --no-deps ."]
    locked = (ROOT / "requirements" / "image.txt").read_text("utf-8")
    for package in ("boto3", "msal", "litestar", "uvicorn"):
        assert re.search(rf"^{package}==\S+$", locked, re.MULTILINE), package
    assert any(word == "HEALTHCHECK" for word, _ in steps)
    copied = [rest for word, rest in steps if word in ("COPY", "ADD")]
    assert copied
    assert all(word != "ADD" for word, _ in steps)
    for rest in copied:
        sources = rest.split()[:-1]
        assert sources, rest
        # Named paths only: never the whole context, never keys, tests or dot-files.
        assert all(not s.startswith(("keys", "tests", ".")) for s in sources), rest


def test_dockerfile_default_command_is_accepted_by_the_cli() -> None:
    cmd = next(rest for word, rest in dockerfile_instructions() if word == "CMD")
    argv = yaml.safe_load(cmd)
    assert isinstance(argv, list)
    resolved, ctx = resolve_cli(argv)
    assert resolved.name == "serve"
    assert ctx.params["host"] == "0.0.0.0"


def test_dockerignore_keeps_keys_venv_and_caches_out() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # An allow-list: everything is out unless named, and keys/ is never named back in.
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "s2s", "services", "requirements/image.txt"}
    for excluded in ("keys/", ".venv/", "**/__pycache__", "**/.pytest_cache", "**/.mypy_cache"):
        assert excluded in lines
