"""The config reader evaluates literals and simple arithmetic only, within bounds; nothing runs."""

from __future__ import annotations

import pytest

from parsers.pyconfig import literal_value, override_value, parse_assignment


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5 * 8", 40), ("1e-1", 0.1), ("'gpt2-124M'", "gpt2-124M"), ("2**10", 1024), ("-3", -3),
        ("True", True), ("(1, 2)", (1, 2)), ("[0.9, 0.95]", [0.9, 0.95]), ("'ft-' + 'x'", "ft-x"),
        ("600000 // 2", 300000), ("6e-4 / 10", 6e-5),
    ],
)
def test_values(text: str, value: object) -> None:
    assert literal_value(text) == pytest.approx(value) if isinstance(value, float) else literal_value(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('id')", "open('/etc/passwd').read()", "9**9**9", "10**400", "1e309",
        "'a' * 10**9", "[x for x in range(10)]", "lambda: 1", "max_iters", "time.time()", "{'a': 1}",
        "(" * 5000 + "1" + ")" * 5000, "[" + ",".join(["1"] * 100000) + "]", "1/0", "'x' + 1",
    ],
    ids=lambda t: t[:30],
)
def test_refused(text: str) -> None:
    assert literal_value(text) is None


def test_assignment_with_comment_and_hash_in_string() -> None:
    assert parse_assignment("wandb_run_name = 'run#1' # the name") == ("wandb_run_name", "run#1")
    assert parse_assignment("x == 3") is None
    assert parse_assignment("    indented = 3") == ("indented", 3)


def test_override_keeps_unquoted_strings() -> None:
    assert override_value("cpu") == "cpu"
    assert override_value("1e-3") == 0.001
