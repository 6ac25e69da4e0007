"""Validation of user input and helpers for typed config dataclasses, shared by every layer.

Bad input gets one clear line naming the parameter and the allowed values (`check_choice`, `check_int`), never a
traceback from deep inside. The config helpers change (`with_fields`), read (`get_field`) and document
(`field_docs`, `field_doc`: the one-line docstring under each field) nested frozen dataclasses by dotted path.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def check_choice(parameter: str, value: Any, allowed: tuple[Any, ...] | list[Any]) -> None:
    """Raise ValueError naming `parameter` and the allowed values if `value` is not one of them."""
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"unknown {parameter} {value!r}; allowed values: {choices}")


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None, why: str = "") -> int:
    """`value` as an int if it is an integer >= `minimum` (and <= `maximum`, if given; bools refused); else
    ValueError naming `name`, the allowed range and, for the maximum, `why`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if maximum is not None and value > maximum:
        reason = f" ({why})" if why else ""
        raise ValueError(f"{name} must be an integer from {minimum:,} to {maximum:,}{reason}; got {value!r}")
    return int(value)


def with_fields(config: T, **changes: Any) -> T:
    """A copy of a config dataclass with some fields changed; unknown field names raise a clear error."""
    names = [f.name for f in dataclasses.fields(config)]  # type: ignore[arg-type]
    for key in changes:
        check_choice(f"field of {type(config).__name__}", key, names)
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def get_field(config: Any, dotted: str) -> Any:
    """Value at a dotted path such as 'ppo.clip_eps'; an unknown segment raises a clear error."""
    value = config
    for part in dotted.split("."):
        names = [f.name for f in dataclasses.fields(value)]
        check_choice(f"field of {type(value).__name__}", part, names)
        value = getattr(value, part)
    return value


def field_docs(cls: type) -> dict[str, str]:
    """The one-line docstrings of a dataclass's fields, read from its source."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for stmt, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[stmt.target.id] = nxt.value.value.strip()
    return docs


def field_doc(config: Any, dotted: str) -> str:
    """The docstring of the field at a dotted path of a (nested) config dataclass."""
    *parents, last = dotted.split(".")
    owner = get_field(config, ".".join(parents)) if parents else config
    return field_docs(type(owner)).get(last, "")


__all__ = ["check_choice", "check_int", "field_doc", "field_docs", "get_field", "with_fields"]
