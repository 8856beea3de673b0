"""Reading values from the Python config text nanoGPT echoes into its log, without executing it.

The log is untrusted input: only literals and simple arithmetic on them are evaluated, with bounds on
size so that `9**9**9` or a 10 MB list cannot cost time or memory. Anything else is "not a value".
"""

from __future__ import annotations

import ast
import math
import operator
import re
import warnings

MAX_EXPR_CHARS = 4096
MAX_STR_CHARS = 4096
MAX_ABS_NUMBER = 1e30

_ASSIGN = re.compile(r"^\s*([A-Za-z_]\w*)\s*=(?!=)\s*(.+?)\s*$")
_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


class _NotAValue(Exception):
    pass


def parse_assignment(line: str) -> tuple[str, object] | None:
    """`key = <expression>` → (key, value), or None when the line is not a readable assignment."""
    m = _ASSIGN.match(line)
    if not m:
        return None
    value = literal_value(_strip_comment(m.group(2)))
    return None if value is None else (m.group(1), value)


def literal_value(text: str) -> object | None:
    """The value of a literal expression with simple arithmetic, or None."""
    if not text or len(text) > MAX_EXPR_CHARS:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ast.parse warns about odd literals; they are just "not a value"
            tree = ast.parse(text, mode="eval")
        return _value(tree.body, depth=0)
    except (_NotAValue, SyntaxError, ValueError, TypeError, ZeroDivisionError, OverflowError,
            RecursionError, MemoryError):
        return None


def override_value(text: str) -> object:
    """An `Overriding: key = value` value: printed with str(), so unquoted strings stay strings."""
    value = literal_value(text)
    return text if value is None else value


def _strip_comment(text: str) -> str:
    """Drop a trailing `# comment` that is not inside a string literal."""
    if "#" not in text:
        return text
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return text[:i].rstrip()
    return text


def _value(node: ast.AST, depth: int) -> object:
    if depth > 20:
        raise _NotAValue
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, (int, float)):
            return _number(v)
        if isinstance(v, str):
            if len(v) > MAX_STR_CHARS:
                raise _NotAValue
            return v
        raise _NotAValue
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _value(node.operand, depth + 1)
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            raise _NotAValue
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left = _value(node.left, depth + 1)
        right = _value(node.right, depth + 1)
        return _binop(node.op, left, right)
    if isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) <= 64:
        items = [_value(e, depth + 1) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    raise _NotAValue


def _binop(op: ast.operator, left: object, right: object) -> object:
    if isinstance(left, str) and isinstance(right, str) and isinstance(op, ast.Add):
        if len(left) + len(right) > MAX_STR_CHARS:
            raise _NotAValue
        return left + right
    for v in (left, right):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _NotAValue
    assert isinstance(left, (int, float)) and isinstance(right, (int, float))
    if isinstance(op, ast.Pow) and (abs(right) > 64 or (abs(left) > 1 and abs(right) * math.log10(abs(left)) > 30)):
        raise _NotAValue
    return _number(_BINOPS[type(op)](left, right))


def _number(v: object) -> int | float:
    if isinstance(v, complex) or not isinstance(v, (int, float)):
        raise _NotAValue
    if isinstance(v, float) and not math.isfinite(v):
        raise _NotAValue
    if abs(v) > MAX_ABS_NUMBER:
        raise _NotAValue
    return v
