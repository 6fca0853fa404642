"""oaicompat.fileio: the one atomic write and the one YAML dumper; and the environment run/nightly give children."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from oaicompat import fileio
from oaicompat.fileio import atomic_write_bytes, atomic_write_text, dump_yaml, is_temp_name, remove_stale_temps
from oaicompat.paths import CASSETTES, IMPORTED
from oaicompat.run import child_env


def test_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.txt"
    atomic_write_text(path, "one\n")
    atomic_write_text(path, "two ☃\n", mode=0o644)
    assert path.read_text(encoding="utf-8") == "two ☃\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["f.txt"]


def test_default_mode_is_an_ordinary_files(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"\x00\xff", fsync=False)
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert path.read_bytes() == b"\x00\xff"


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.txt"
    path.write_text("old")
    seen: list[str] = []

    def fail(src: str, dst: object) -> None:
        seen.append(Path(src).name)
        raise OSError("disk full")
    monkeypatch.setattr(fileio.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    assert len(seen) == 1 and is_temp_name(seen[0]) and seen[0].startswith(f".f.txt.{os.getpid()}-")


def test_temp_names_are_recognised() -> None:
    assert is_temp_name(".test_x.yaml.1234-abcd_123.tmp")
    assert is_temp_name(".test_x.yaml.k2j4h5g6.tmp")           # the naming before fileio
    assert not is_temp_name("test_x.yaml")
    assert not is_temp_name(".hidden.tmp")
    assert not is_temp_name(".test_x.yaml.12-ab.tmp")


def test_remove_stale_temps_keeps_live_writes_and_other_files(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    stale = [tmp_path / f".a.yaml.{child.pid}-abcdefgh.tmp", tmp_path / ".b.yaml.abcdefgh.tmp"]
    kept = [tmp_path / f".c.yaml.{os.getpid()}-abcdefgh.tmp",    # this process is writing it
            tmp_path / ".d.yaml.abcdefgh.tmp",                    # old naming, not empty: not known to be a leftover
            tmp_path / ".notes.tmp", tmp_path / "e.yaml"]
    for p in stale + kept:
        p.write_bytes(b"" if p.name.startswith((".a", ".b", ".c")) else b"x")
    assert sorted(remove_stale_temps(tmp_path)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    assert remove_stale_temps(tmp_path / "missing") == []


def test_dump_yaml_reproduces_every_committed_cassette_and_imported_file() -> None:
    """Cassettes and imported recordings share one dumper: both kinds re-dump to their exact bytes."""
    # every file the recorder or the importer wrote (recorders.yaml is the importer's hand-written profile table)
    paths = sorted(CASSETTES.rglob("*.yaml")) + sorted(p for p in IMPORTED.rglob("*.yaml") if p.parent != IMPORTED)
    assert len(paths) > 100
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert dump_yaml(yaml.load(text, Loader=fileio.yaml_loader())) == text, path


@pytest.mark.parametrize("value", ["a\nb\n", "\nleading break", "trailing space \nx", "tab\tand\nline", "one line",
                                   "cr\r\nlf", "\ufeffbom\n", "x\u2028y\n", ""])
def test_dump_yaml_round_trips_text(value: str) -> None:
    doc = {"z": value, "a": [value], "n": None}
    text = dump_yaml(doc)
    assert yaml.safe_load(text) == doc
    assert text.startswith("z:")                    # keys in insertion order


def test_dump_yaml_writes_no_anchors() -> None:
    shared = {"k": "v"}
    assert "&" not in dump_yaml({"a": shared, "b": shared})


def test_children_may_write_bytecode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAICOMPAT_CACHE", str(tmp_path))
    env = child_env({"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/bin"})
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPYCACHEPREFIX"] == str(tmp_path / "pycache")
    assert env["PATH"] == "/bin"
    assert child_env({"PATH": "/bin"}) == {"PATH": "/bin"}
    kept = child_env({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": "/elsewhere"})
    assert kept == {"PYTHONPYCACHEPREFIX": "/elsewhere"}
