"""Strict YAML reading (duplicate keys are errors) and one-line error messages.

Configs come from strangers, so reading is bounded: the file size, the nesting depth (checked on the text before
parsing, so ``[[[[...`` fails at once) and the number of values after YAML aliases are expanded (an alias bomb
such as the "billion laughs" is refused without expanding it). Messages never embed a whole value: echoed
values and keys are truncated.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import YAMLError

MAX_BYTES = 4 << 20
MAX_DEPTH = 64
MAX_INDENT = 256
MAX_VALUES = 100_000
ECHO_CHARS = 60

_QUOTED_OR_COMMENT = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"\\]|\\.)*\"|#[^\n]*")


class ConfigError(ValueError):
    """A configuration file is unreadable or invalid. The message is one line: file, key path, allowed."""


def echo(value: Any, limit: int = ECHO_CHARS) -> str:
    """``repr`` of a user value for an error line: containers are summarised, long text truncated."""
    if isinstance(value, (dict, list, tuple, set)):
        text = f"a {type(value).__name__} of {len(value)} items" if len(value) > 8 else _safe_repr(value)
    else:
        text = _safe_repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _safe_repr(value: Any) -> str:
    if isinstance(value, (dict, list, tuple, set)) and _count_values(value, ECHO_CHARS) > ECHO_CHARS:
        return f"a {type(value).__name__} (nested)"
    try:
        return repr(value)
    except RecursionError:  # a self-referencing alias
        return f"a {type(value).__name__} (recursive)"


def _count_values(obj: Any, limit: int) -> int:
    """Values of ``obj`` with aliases expanded (shared sub-trees counted every time they occur), stopping once
    ``limit`` is passed; a sub-tree's expanded count is memoised by identity, so the walk is linear."""
    memo: dict[int, int] = {}
    active: set[int] = set()

    def count(v: Any, depth: int) -> int:
        if not isinstance(v, (dict, list)):
            return 1
        key = id(v)
        if key in memo:
            return memo[key]
        if key in active or depth > MAX_DEPTH:
            return limit + 1  # a cycle (recursive alias) or nesting beyond the bound
        active.add(key)
        total = 1
        for child in v.values() if isinstance(v, dict) else v:
            total += count(child, depth + 1)
            if total > limit:
                break
        active.discard(key)
        memo[key] = total
        return total

    return count(obj, 0)


def _nesting_problem(text: str) -> str | None:
    """A cheap look at the text before parsing: flow brackets deeper than MAX_DEPTH or absurd indentation."""
    stripped = _QUOTED_OR_COMMENT.sub("", text)
    depth = top = 0
    for ch in re.findall(r"[\[\]{}]", stripped):
        depth += 1 if ch in "[{" else -1
        top = max(top, depth)
        if top > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
    indent = max((len(m) for m in re.findall(r"^[ \t]*(?=\S)", text, flags=re.M)), default=0)
    if indent > MAX_INDENT:
        return f"indented {indent} columns (nested too deeply; at most {MAX_INDENT})"
    return None


def read_yaml(path: str | Path) -> Any:
    """Load a YAML file with ruamel's safe loader; duplicate keys raise :class:`ConfigError`."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory; give a YAML file")
    if not p.is_file():
        raise ConfigError(f"{p}: no such file" if not p.exists() else f"{p}: not a regular file")
    size = p.stat().st_size
    if size > MAX_BYTES:
        raise ConfigError(f"{p}: {size} bytes; a config has at most {MAX_BYTES} bytes")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    if "\x00" in text:
        raise ConfigError(f"{p}: holds NUL bytes; not a YAML text file")
    problem = _nesting_problem(text)
    if problem:
        raise ConfigError(f"{p}: {problem}")
    yaml = YAML(typ="safe", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        data = yaml.load(text)
    except DuplicateKeyError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ConfigError(f"{p}:{line}: duplicate key ({_short(exc.problem)})") from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark else str(p)
        raise ConfigError(f"{where}: not valid YAML ({_short(getattr(exc, 'problem', None) or exc)})") from None
    except RecursionError:
        raise ConfigError(f"{p}: nested too deeply (at most {MAX_DEPTH} levels)") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. an unhashable key, a huge integer literal
        raise ConfigError(f"{p}: not valid YAML ({_short(exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys, got {type(data).__name__}")
    if _count_values(data, MAX_VALUES) > MAX_VALUES:
        raise ConfigError(
            f"{p}: expands to more than {MAX_VALUES} values or is recursive (YAML aliases '*' repeat whole "
            "sub-trees); a config is a few hundred values"
        )
    return data


def _short(obj: object, limit: int = 160) -> str:
    s = " ".join(str(obj).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _loc(parts: tuple[Any, ...]) -> str:
    keys = [str(x) for x in parts if not str(x).startswith("function-after")]
    return ".".join(k if len(k) <= 40 else k[:37] + "..." for k in keys)


_UNKNOWN_KEY = "unknown key (check the spelling; allowed keys are listed in docs/hardware-config.md)"


def format_validation_error(path: str | Path, exc: ValidationError, *, unknown_key: str = _UNKNOWN_KEY) -> str:
    """One line per problem, joined by '; ', each ``file: key.path: message`` (at most 5 problems);
    ``unknown_key`` is the message for a key the schema does not have."""
    parts = []
    errors = exc.errors(include_url=False)
    for err in errors[:5]:
        loc = _loc(err["loc"])
        msg = _short(err["msg"], 200)
        if err["type"] == "extra_forbidden":
            msg = unknown_key
        elif err["type"] == "literal_error":
            msg = f"must be one of {err.get('ctx', {}).get('expected', '')}, got {echo(err.get('input'))}"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif "input" in err and not isinstance(err["input"], dict):
            msg = f"{msg}, got {echo(err['input'])}"
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{path}: {loc or '<top>'}: {msg}")
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more problems")
    return "; ".join(parts)
