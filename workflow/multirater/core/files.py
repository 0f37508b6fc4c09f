"""Strict reading (clear errors) and atomic writing (no partial output) of files.

JSON is parsed with orjson (a maintained Rust parser, several times faster than the standard library's);
whatever orjson refuses or would read differently (NaN/Infinity, integers beyond 64 bits, lone surrogates) goes
to the standard library, so what a file parses to, and every error message, is what ``json`` gives.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from multirater.core.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("file not found", path) from None
    except UnicodeDecodeError:
        raise UserError("not a UTF-8 text file", path) from None
    except OSError as exc:
        raise UserError(f"cannot read ({exc.strerror})", path) from None


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a block builds many acyclic objects (parsed JSON, records).

    Every container allocated counts towards a collection, so parsing 400,000 detections would otherwise run
    hundreds of collections over a growing heap; the objects are freed by reference counting all the same.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_bytes(path: str | Path) -> bytes:
    """A file's bytes; a missing or unreadable file is a :class:`UserError` naming it."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError("file not found", path) from None
    except OSError as exc:
        raise UserError(f"cannot read ({exc.strerror})", path) from None


# orjson reads integers beyond 64 bits as floats; json keeps them integers. Such a number has 20 digits or more.
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0000000000")
_TWENTY_DIGITS = b"0" * 20


def parse_json(raw: bytes, path: str | Path, *, big_ints_as_floats: bool = False) -> Any:
    """Parse the bytes of the JSON file ``path``: the value ``json.loads`` gives, or a :class:`UserError` naming
    the file, line and column.

    ``big_ints_as_floats``: skip the scan that sends integers beyond 64 bits to the standard library (they then
    parse as floats); for large files whose integers are known to be ids or counts.
    """
    if big_ints_as_floats or raw.translate(_DIGITS_TO_ZERO).find(_TWENTY_DIGITS) < 0:
        try:
            with gc_paused():
                return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the standard library decides: it accepts NaN and Infinity, and words its errors itself
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError("not a UTF-8 text file", path) from None
    # the universal newlines of a text-mode read, as before: line numbers in errors stay the same
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        with gc_paused():
            return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", path) from None


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing file or a syntax error names the file, line and column."""
    path = Path(path)
    return parse_json(read_bytes(path), path)


def read_format_json(path: str | Path, file_format: str, what: str) -> dict[str, Any]:
    """A JSON object whose ``format`` is ``file_format``; anything else is one error naming ``what`` it is not."""
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != file_format:
        raise UserError(f"not a {what} (needs \"format\": \"{file_format}\")", path)
    return data


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; a missing file or a syntax error names the file and position."""
    import yaml  # here, not at the top: commands that read no YAML start faster

    path = Path(path)
    text = _read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"malformed YAML{where}: {problem}", path) from None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Readers never see a half-written file, and a failure leaves no output behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes the file private (0600); give it the mode a plain open() would.
    os.chmod(tmp_path, 0o666 & ~_UMASK)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | Path, chunks: Iterator[bytes] | list[bytes]) -> None:
    """Write ``chunks`` one after another to ``path`` atomically (nothing is left if one of them fails)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)


def write_json(path: str | Path, data: Any, indent: int | None = 1) -> None:
    """Write ``data`` as JSON atomically; NaN or infinity is a ValueError (JSON has no such numbers)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=indent, allow_nan=False)
            fh.write("\n")


def write_yaml(path: str | Path, data: Any) -> None:
    import yaml

    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            yaml.safe_dump(data, fh, sort_keys=False)


def write_csv(path: str | Path, frame: "Any") -> None:
    """Write a pandas DataFrame as CSV atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def staging_dir(parent: str | Path, prefix: str) -> Path:
    """A new empty folder in ``parent`` to build an output in before it is moved into place.

    ``tempfile.mkdtemp`` makes it private (0700); a dataset moved into place from it would stay
    unreadable to the rest of a lab's group, so it gets the permissions a plain mkdir would.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(path, 0o777 & ~_UMASK)
    return path


# An output folder holds this hidden file naming the command that wrote it: a later run of that command may
# replace the folder, while any other non-empty folder is refused (never deleted).
OUTPUT_MARKER = ".multirater-output"


@contextlib.contextmanager
def atomic_folder(path: str | Path, writer: str) -> Iterator[Path]:
    """Yield an empty folder beside ``path`` to build an output folder in; it replaces ``path`` only if the
    block succeeds, so a failure leaves ``path`` as it was (absent, or the previous output).

    ``path`` must not exist, be empty, or hold an earlier output of the same ``writer`` (a command name).
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise UserError("exists and is not a folder", path)
        marker = path / OUTPUT_MARKER
        earlier = marker.is_file() and marker.read_text(encoding="utf-8", errors="replace").strip() == writer
        if not earlier and any(path.iterdir()):
            raise UserError(f"folder exists, is not empty and was not written by `multirater {writer}`: "
                            "choose a new folder", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(path.parent, prefix=f".{path.name}.")
    try:
        yield staging
        (staging / OUTPUT_MARKER).write_text(writer + "\n", encoding="utf-8")
        _replace_folder(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _replace_folder(staging: Path, path: Path) -> None:
    """Move the finished ``staging`` folder to ``path``; the folder there before is moved aside, then deleted."""
    if not path.exists():
        os.replace(staging, path)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
    os.replace(path, old / path.name)
    try:
        os.replace(staging, path)
    except OSError:
        os.replace(old / path.name, path)  # put the earlier output back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
