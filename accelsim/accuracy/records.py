"""The accuracy results file: records keyed by ``"<model>|<pattern>|<criterion>|<mitigation>"``.

Layout (``docs/accuracy.md``)::

    {"schema": "accelsim-accuracy/1",
     "records": {"<model>|<pattern>|<criterion>|<mitigation>": {...record...}, ...}}
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA", "load_records", "write_records"]

SCHEMA = "accelsim-accuracy/1"


def load_records(path: str | Path) -> dict[str, dict[str, Any]]:
    """Records of an existing results file (empty if the file does not exist). Raises ValueError on a file
    that is not an accelsim accuracy results file."""
    p = Path(path)
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("records"), dict):
        raise ValueError(f"{p}: not an accelsim accuracy results file (schema {SCHEMA!r} expected)")
    return data["records"]


def write_records(path: str | Path, records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Merge ``records`` into the file at ``path`` (same key -> replaced), atomically. Returns all records."""
    p = Path(path)
    merged = load_records(p)
    for r in records:
        merged[r["key"]] = r
    p.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"schema": SCHEMA, "records": dict(sorted(merged.items()))}, indent=1, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(body + "\n")
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return merged
