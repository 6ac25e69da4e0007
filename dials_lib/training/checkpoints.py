"""Checkpoint files that are verified before they are trusted: a checksum and the identity of their run.

A run's state is checkpointed at every chunk boundary (`RunDirectory.save`). A checkpoint file is one header line
and the state as `torch.save` wrote it:

    DIALS-CHECKPOINT 1 {"bytes": ..., "sha256": ..., "run": ..., "boundary": ...}\n<torch.save bytes>

`sha256` is the checksum of those bytes and `run` the identity of the run they belong to (`run_identity`: a hash
of every config field that changes results, so not the run directory, the number of workers or a grouping into
groups of two or more agents). A file is loaded only if its length, checksum and run identity all match; a damaged
file, a truncated one, one copied from another run or one written without a header never is.

Writing keeps the previous checkpoint: the new file is written and flushed to disk beside the old one, the old one
becomes `checkpoint.prev.pt`, and the new one takes its place, each step an atomic rename. Reading takes the newest
file that passes its checks (`read_checkpoint`), so a kill at any moment, or a damaged newest file, falls back to
the previous boundary, and a run resumes from there.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from dials_lib.files import atomic_write
from dials_lib.training.run_config import GROUPING_FIELDS, RESUMABLE_FIELDS, RunConfig

MAGIC = b"DIALS-CHECKPOINT 1 "
"""The first bytes of every checkpoint file (format version 1)."""
PREVIOUS_SUFFIX = ".prev"
"""`checkpoint.pt` -> `checkpoint.prev.pt`: the checkpoint before the newest, kept until the next one is in place."""


class CheckpointError(ValueError):
    """A checkpoint file that fails its checks (damaged, truncated, of another run, or without a header)."""


def run_identity(config: RunConfig) -> str:
    """A hash of the config fields that change a run's results (every field but the run directory, the number of
    workers and the grouping into groups of at least two agents)."""
    return record_identity(config.record())


def record_identity(record: dict[str, Any]) -> str:
    """`run_identity` of a config as `RunConfig.record()` (and so config.json) holds it."""
    kept = {key: value for key, value in record.items() if key not in RESUMABLE_FIELDS + GROUPING_FIELDS}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:32]


def previous_path(path: Path) -> Path:
    """Where the checkpoint before `path`'s newest is kept."""
    return path.with_name(path.stem + PREVIOUS_SUFFIX + path.suffix)


def write_checkpoint(path: Path, state: dict[str, Any], identity: str, keep_previous: bool = True,
                     progress: dict[str, int] | None = None) -> None:
    """Write `state` to `path` with its header; the file it replaces becomes the previous checkpoint (unless
    `keep_previous` is False: then it is simply replaced). `progress` (optional) goes into the header too, for
    readers that say how far a training is without loading the state (`read_header`)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getbuffer()
    header = {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest(), "run": identity,
              "boundary": int(state["boundary"]), **({"progress": progress} if progress else {})}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            file.write(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n")
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())

    atomic_write(path, write, previous=previous_path(path) if keep_previous else None)


def read_header(path: Path) -> dict[str, Any] | None:
    """The header of checkpoint file `path` (bytes, sha256, run, boundary and any progress), unverified; None if
    unreadable."""
    try:
        with open(path, "rb") as file:
            line = file.readline(4096)
        return json.loads(line[len(MAGIC):]) if line.startswith(MAGIC) else None
    except (OSError, ValueError):
        return None


def verified_state(path: Path, identity: str | None = None) -> dict[str, Any]:
    """The state in checkpoint file `path` after its checks (the run identity too, unless `identity` is None), or a
    `CheckpointError` saying which one failed."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise CheckpointError(f"{path} has no checkpoint header (damaged, or written by an older version)")
    end = data.find(b"\n")
    try:
        header = json.loads(data[len(MAGIC):end])
        expected, checksum, run = int(header["bytes"]), str(header["sha256"]), str(header["run"])
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{path} has a damaged header") from None
    payload = memoryview(data)[end + 1:]
    if len(payload) != expected:
        raise CheckpointError(f"{path} holds {len(payload)} bytes of state where its header says {expected} "
                              "(truncated or damaged)")
    if hashlib.sha256(payload).hexdigest() != checksum:
        raise CheckpointError(f"{path} fails its checksum (damaged)")
    if identity is not None and run != identity:
        raise CheckpointError(f"{path} belongs to another run (a different config)")
    return torch.load(io.BytesIO(payload), weights_only=False)


def verified_state_or_none(path: Path, identity: str, if_refused: str) -> dict[str, Any] | None:
    """The state in `path` after its checks, or None when there is no such file or it fails them; a failure also
    prints a warning line: the reason, then `if_refused` (what follows from it, e.g. 'its AIPs train again')."""
    if not path.exists():
        return None
    try:
        return verified_state(path, identity)
    except CheckpointError as err:
        print(f"warning: {err}; {if_refused}", file=sys.stderr)
        return None


def read_checkpoint(path: Path, identity: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The state of the newest checkpoint of `path` (the file, then the previous one) that passes its checks, and a
    line per file that failed; (None, []) when there is none (a new run). Raises `CheckpointError` when files
    exist and none passes."""
    problems = []
    candidates = [p for p in (path, previous_path(path)) if p.exists()]
    for candidate in candidates:
        try:
            return verified_state(candidate, identity), problems
        except CheckpointError as err:
            problems.append(str(err))
    if problems:
        raise CheckpointError("; ".join(problems) + ": the run cannot resume from it. Delete the run directory "
                              "to start the run over, or choose another run_dir")
    return None, problems


__all__ = ["MAGIC", "CheckpointError", "previous_path", "read_checkpoint", "read_header", "record_identity",
           "run_identity", "verified_state", "verified_state_or_none", "write_checkpoint"]
