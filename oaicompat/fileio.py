"""Writing files: one atomic write and one YAML dumper for every file the harness writes.

`atomic_write_bytes` / `atomic_write_text` (and `atomic_writer`, the same streamed) write to a temporary file in
the target's directory, fsync it and rename it over the target, so a reader (or a killed run) only ever sees the
old file or the new one. The temporary file is named ``.<target name>.<pid>-<random>.tmp``: a run killed mid-write
leaves at most that file behind, and `remove_stale_temps` recognises it (its process is gone) and removes it at the
next write into that directory. `dump_yaml` is the cassette style (block mappings in key order, multi-line text as
literal blocks, never anchors), shared by cassettes and imported recordings so the two cannot drift apart;
`dump_yaml_to` writes it to a stream as it is emitted, for files too large to build as one string.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_writer", "dump_yaml", "dump_yaml_to", "is_temp_name",
           "remove_stale_temps", "yaml_loader"]

_TEMP_SUFFIX = ".tmp"
# .<target>.<pid>-<8 mkstemp characters>.tmp (this module) or .<target>.<8 characters>.tmp (before it)
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.(?:(?P<pid>[0-9]+)-)?[a-z0-9_]{8}\.tmp")


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None, fsync: bool = True) -> None:
    """Replace `path` with `data` atomically (temp file in the same directory, fsync, rename).

    `mode`: the file's permissions; default 0o666 minus the umask, as an ordinary new file gets.
    `fsync=False` skips the flush to disk for files that are cheap to regenerate (a rendered site)."""
    with atomic_writer(path, binary=True, mode=mode, fsync=fsync) as fh:
        fh.write(data)


def atomic_write_text(path: Path, text: str, *, mode: int | None = None, fsync: bool = True) -> None:
    """`atomic_write_bytes` of `text` as UTF-8 (newlines written as given)."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode, fsync=fsync)


@contextlib.contextmanager
def atomic_writer(path: Path, *, binary: bool = False, mode: int | None = None, fsync: bool = True,
                  check: Callable[[Path], None] | None = None) -> Iterator[IO[Any]]:
    """The atomic write, streamed: write to the file object yielded (UTF-8 text with newlines as given, or
    bytes when `binary`); when the block ends without an exception the temp file is flushed, closed, given to
    `check` (which raises to refuse it: the old file is then kept) and renamed over `path`. Nothing of what is
    written is held in memory, so a large file costs what its writer holds, not its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=_TEMP_SUFFIX, dir=path.parent)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        if check is not None:
            check(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask() if mode is None else mode)   # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- leftovers of a killed run ------------------------------------------------------------------------------

def is_temp_name(name: str) -> bool:
    """True for the name of a temporary file an atomic write makes (or made, before this module)."""
    return _TEMP_NAME.fullmatch(name) is not None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True     # someone else's process, or not ours to probe: leave its file alone
    return True


def remove_stale_temps(directory: Path) -> list[Path]:
    """Remove the temporary files that killed writes left in `directory` (not recursive); returns them.

    A file is stale when the process named in it is gone; a file of the older naming (no process id) is
    stale when it is empty, which is what a kill between create and write leaves."""
    removed: list[Path] = []
    try:
        candidates = [p for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(_TEMP_SUFFIX)]
    except OSError:
        return removed
    for path in candidates:
        m = _TEMP_NAME.fullmatch(path.name)
        if m is None:
            continue
        try:
            stale = not _alive(int(m["pid"])) if m["pid"] else path.stat().st_size == 0
            if stale:
                path.unlink()
                removed.append(path)
        except OSError:
            continue     # gone meanwhile, or not ours to remove
    return removed


# -- YAML -------------------------------------------------------------------------------------------------

try:  # libyaml's emitter and parser are an order of magnitude faster; fall back when it is absent
    _BaseDumper: type = yaml.CSafeDumper
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _BaseDumper = yaml.SafeDumper
    _BaseLoader = yaml.SafeLoader


def yaml_loader() -> type:
    """The safe loader to read YAML with: libyaml's CSafeLoader where available."""
    return _BaseLoader


class _Dumper(_BaseDumper):  # type: ignore[misc,valid-type]
    def ignore_aliases(self, data: Any) -> bool:   # never emit anchors/aliases
        return True


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # literal blocks for multi-line text; YAML folds CR and some Unicode breaks and a literal block cannot start
    # with a space or a break nor keep a line's trailing spaces readably, so those stay quoted (a line ends with
    # a space exactly when " \n" occurs or the text ends with one: no copy of the lines is made)
    if "\n" in value and not any(c in value for c in "\r\x85\u2028\u2029\t\ufeff") \
            and not value.startswith((" ", "\n")) and " \n" not in value and not value.endswith(" "):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_representer)


def dump_yaml_to(doc: Any, stream: IO[str]) -> None:
    """`doc` as YAML in the cassette style, written to a text stream as it is emitted (never one big string)."""
    yaml.dump(doc, stream, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100_000)


def dump_yaml(doc: Any) -> str:
    """`doc` as YAML in the cassette style: keys in insertion order, no line folding, Unicode as is."""
    out = io.StringIO()
    dump_yaml_to(doc, out)
    return out.getvalue()
