"""The one settings reader (s2s._env) every from_env goes through."""

from __future__ import annotations

from typing import Any

import pytest

from s2s._env import EnvReader, parse_duration
from s2s.errors import ConfigError
from s2s.secrets import SecretNotFound, SecretReference


class Source:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, ref: str | SecretReference) -> str | bytes:
        try:
            return self.values[str(ref)]
        except KeyError:
            raise SecretNotFound(str(ref), "no such secret") from None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("1.5", 1.5), ("250ms", 0.25), ("30s", 30), ("5m", 300), ("2h", 7200), ("7d", 604800)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-1", "nan", "inf", "5 weeks", "1e999", "m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_types_and_blank_values() -> None:
    env = EnvReader("X_", {"X_N": "2.5", "X_I": "7", "X_F": "Yes", "X_L": "a, b c,,a", "X_B": "  "})
    assert env.number("N", 0) == 2.5 and env.integer("I", 0) == 7 and env.flag("F", False) is True
    assert env.strings("L") == ("a", "b", "c") and env.text("B", "default") == "default"
    assert env.flag("MISSING", None) is None and not env.given("B")
    env.finish()


def test_every_problem_in_one_line_naming_each_variable() -> None:
    env = EnvReader("X_", {"X_N": "many", "X_I": "1.5", "X_F": "maybe", "X_R": "0"})
    env.require("A")
    env.require("B")
    env.number("N", 1)
    env.integer("I", 1)
    env.flag("F", True)
    env.integer("R", 5, minimum=1)
    env.one_of("C", "D")
    with pytest.raises(ConfigError) as info:
        env.finish()
    assert str(info.value) == (
        "missing settings: X_A, X_B, X_C or X_D; X_N='many' must be a number; "
        "X_I='1.5' must be a whole number; X_F='maybe' must be true or false; X_R must be at least 1, not 0"
    )


def test_references_are_resolved_and_a_secret_value_is_never_quoted() -> None:
    source = Source({"aws-sm://cfg#port": "not-a-port", "aws-sm://cfg#host": "example.internal"})
    env = EnvReader("X_", {"X_PORT": "aws-sm://cfg#port", "X_HOST": "aws-sm://cfg#host"}, secrets=source)
    assert env.text("HOST") == "example.internal"
    env.integer("PORT", 1)
    with pytest.raises(ConfigError) as info:
        env.finish()
    assert "X_PORT (from its aws-sm:// secret) must be a whole number" in str(info.value)
    assert "not-a-port" not in str(info.value)


def test_unreadable_references_keep_their_type_and_join_the_line() -> None:
    env = EnvReader("X_", {"X_A": "aws-sm://none#a", "X_B": "aws-sm://none#b"}, secrets=Source({}))
    env.text("A")
    env.require("B")
    env.require("C")
    with pytest.raises(SecretNotFound) as info:
        env.finish()
    assert str(info.value) == (
        "X_A=aws-sm://none#a: no such secret; X_B=aws-sm://none#b: no such secret; missing setting: X_C"
    )


def test_locations_are_never_resolved() -> None:
    env = EnvReader("X_", {"X_STORE": "aws-sm://keys"}, secrets=Source({}))
    assert env.location("STORE", "file://keys") == "aws-sm://keys"
    env.finish()


def test_build_names_the_variables_an_object_refuses() -> None:
    from dataclasses import dataclass

    @dataclass
    class Pair:
        low: int
        high: int

        def __post_init__(self) -> None:
            if self.low > self.high:
                raise ConfigError("low must not exceed high")

    env = EnvReader("X_", {})
    values: dict[str, Any] = {"low": 5, "high": 1}
    with pytest.raises(ConfigError, match=r"^X_LOW, X_TOP: low must not exceed high$"):
        env.build(Pair, values, {"high": "TOP"})
