"""Where the local servers keep their installs, model files, logs and run state.

Everything lives under one cache root, outside the checkout, so a machine installs
and builds once: ``$OAICOMPAT_CACHE`` if set, else ``~/.cache/oaicompat``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CACHE_ENV = "OAICOMPAT_CACHE"

GGUF_NAME = "gemma-3-270m-Q4_K_M.gguf"
HF_MODEL_DIRNAME = "gemma-3-270m-hf"


def cache_root() -> Path:
    """The cache root: ``$OAICOMPAT_CACHE`` or ``~/.cache/oaicompat``."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "oaicompat"


def models_dir() -> Path:
    return cache_root() / "models"


def gguf_path() -> Path:
    """The Gemma 3 270M Q4_K_M GGUF every GGUF-reading server loads."""
    return models_dir() / GGUF_NAME


def hf_model_dir() -> Path:
    """The same weights converted to a transformers folder (for vLLM)."""
    return models_dir() / HF_MODEL_DIRNAME


def build_dir() -> Path:
    """Where sources are unpacked and compiled."""
    return cache_root() / "build"


def llama_server_dir(version: str) -> Path:
    """The versioned install of llama-server: ``bin/`` and ``templates/``."""
    return cache_root() / "llama-server" / version


def venvs_dir() -> Path:
    return cache_root() / "venvs"


def venv_dir(name: str) -> Path:
    return venvs_dir() / name


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def logs_dir() -> Path:
    return cache_root() / "logs"


def run_dir() -> Path:
    """Run state of the started servers (no secret is ever written here)."""
    return cache_root() / "run"


def state_file() -> Path:
    return run_dir() / "servers.json"


def env_file() -> Path:
    return run_dir() / "servers.env"


def lock_file() -> Path:
    return run_dir() / "servers.lock"


def timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def new_log_path(stem: str) -> Path:
    """A fresh log file path ``logs/<stem>-<timestamp>.log`` (never an existing file)."""
    directory = logs_dir()
    directory.mkdir(parents=True, exist_ok=True)
    base = f"{stem}-{timestamp()}"
    candidate = directory / f"{base}.log"
    n = 1
    while candidate.exists():
        candidate = directory / f"{base}-{n}.log"
        n += 1
    return candidate
