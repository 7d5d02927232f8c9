"""Strict YAML reading (duplicate keys are errors) and one-line error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import YAMLError


class ConfigError(ValueError):
    """A configuration file is unreadable or invalid. The message is one line: file, key path, allowed."""


def read_yaml(path: str | Path) -> Any:
    """Load a YAML file with ruamel's safe loader; duplicate keys raise :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such file")
    yaml = YAML(typ="safe", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        with p.open(encoding="utf-8") as fh:
            data = yaml.load(fh)
    except DuplicateKeyError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ConfigError(f"{p}:{line}: duplicate key ({exc.problem})") from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark else str(p)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def format_validation_error(path: str | Path, exc: ValidationError) -> str:
    """One line per problem, joined by '; ', each ``file: key.path: message``."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-after"))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; allowed keys are listed in docs/hardware-config.md)"
        elif err["type"] == "literal_error":
            msg = f"must be one of {err.get('ctx', {}).get('expected', '')}, got {err.get('input')!r}"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif "input" in err and not isinstance(err["input"], dict):
            msg = f"{msg}, got {err['input']!r}"
        msg = msg.removeprefix("Value error, ")
        parts.append(f"{path}: {loc or '<top>'}: {msg}")
    return "; ".join(parts)
