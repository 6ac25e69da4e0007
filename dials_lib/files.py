"""Atomic file writes: a reader (or a crash) never sees a half-written run file, table or figure."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[Path], None], previous: Path | None = None) -> Path:
    """Call `write(tmp_path)` on a temporary file next to `path`, then rename it over `path`; with `previous`, the
    file it replaces is first renamed to `previous` (kept until the new one is in place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except Exception as err:
        # torch.save, writing through a Python file, turns what a write raised into a RuntimeError: a Ctrl-C (or
        # SIGTERM) that arrived during the write must still stop the caller as one, and a full disk be an OSError
        interrupt = next((e for e in _chain(err) if isinstance(e, KeyboardInterrupt)), None)
        if interrupt is not None:
            raise interrupt from None
        cause = os_error_in(err)
        if cause is None:
            raise
        # the file the caller asked for, not our temporary one (a full disk, a read-only or vanished folder...)
        raise OSError(cause.errno, cause.strerror, str(path)) from err
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def os_error_in(error: BaseException) -> OSError | None:
    """The operating system's error (with an errno) that `error` is or that led to it, if any: torch.save, for one,
    reports a full disk as a RuntimeError raised while handling the OSError of its write."""
    return next((e for e in _chain(error) if isinstance(e, OSError) and e.errno is not None), None)


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    """`error` and the exceptions that led to it (its cause, or the one being handled when it was raised), in turn."""
    seen = set()
    while error is not None and id(error) not in seen:
        yield error
        seen.add(id(error))
        error = error.__cause__ or error.__context__


def describe_os_error(error: OSError) -> str:
    """One line for an OSError: the file, what went wrong and its errno name, e.g. "runs/x/metrics.csv: No space
    left on device (ENOSPC)"."""
    name = errno.errorcode.get(error.errno, str(error.errno)) if error.errno is not None else "no errno"
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or error} ({name})"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically (UTF-8)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Write `data` as indented, key-sorted JSON to `path` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def stored_with_settings(paths: Iterable[str | Path], settings: Any) -> Any | None:
    """The first JSON file of `paths` that exists and was made with `settings` (its "settings" entry), read back;
    None when none was. A measurement is read from runs/, else from its published copy, only if made as asked now."""
    for path in paths:
        if Path(path).exists() and (stored := read_json(path)).get("settings") == settings:
            return stored
    return None


def copy_json(source: str | Path, target: str | Path) -> Path | None:
    """Copy the JSON file `source` to `target` atomically (None when `source` does not exist)."""
    return atomic_write_json(target, read_json(source)) if Path(source).exists() else None


def _jsonable(value: Any) -> Any:
    # numpy scalars and arrays, tuples inside dataclasses.asdict output, paths
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
