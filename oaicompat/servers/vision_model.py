"""A tiny vision-language model with RANDOM WEIGHTS, assembled here, for the image path of the local servers.

No vision model is packaged in the registries this project may use, so one is built: a
``Gemma3ForConditionalGeneration`` with a tiny SigLIP vision tower and a 2-layer Gemma 3 text model, all weights
random (fixed seed), the Gemma tokenizer and chat template of the converted Gemma 3 270M folder
(``model.ensure_hf_model``) with ``<image_soft_token>`` added as id 262144, 16 soft tokens per image.

Random weights: its answers are noise. What is real is the image path: the server decodes the image, runs its
image processor and vision tower, and counts the image's tokens in ``usage``; a bad image is refused (or not) by
the server's own code. Every place that names this model says "random weights".

The build runs once, in a subprocess of a venv that has torch and transformers (never in this process), into
``models/<VISION_DIRNAME>`` with a done-marker. Two fixes are applied to what transformers writes:

- its checkpoint keys ``model.vision_tower.*`` become the Hub layout ``vision_tower.vision_model.*`` (what vLLM
  loads, and what transformers maps back on load): ``rename_safetensors_keys`` rewrites only the safetensors
  header, in this process, without torch;
- transformers initialises ``multi_modal_projector.mm_input_projection_weight`` to zeros, so every image would
  embed to 0; the build script randomises it (seeded).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..fileio import atomic_writer
from . import model, paths
from .errors import InstallError, ModelIntegrityError, run_logged

VISION_DIRNAME = "gemma-3-vision-tiny-random"
#: The served model id (transformers serve: the folder's name; vLLM: --served-model-name).
VISION_MODEL_ID = VISION_DIRNAME
VISION_DONE_MARKER = ".oaicompat-built"
SEED = 20261206
IMAGE_TOKEN = "<image_soft_token>"
IMAGE_TOKEN_ID = 262_144
BOI_TOKEN_ID = 255_999  # <start_of_image>, already in the Gemma tokenizer
EOI_TOKEN_ID = 256_000  # <end_of_image>
TOKENS_PER_IMAGE = 16
IMAGE_SIZE = 64
PATCH_SIZE = 8
LABEL = "random weights"

#: Checkpoint key prefixes as transformers 5 saves them → as the Hub (and vLLM) name them. First match wins.
KEY_RENAMES: tuple[tuple[str, str], ...] = (
    ("model.vision_tower.vision_model.", "vision_tower.vision_model."),
    ("model.vision_tower.", "vision_tower.vision_model."),
    ("vision_tower.embeddings.", "vision_tower.vision_model.embeddings."),
    ("vision_tower.encoder.", "vision_tower.vision_model.encoder."),
    ("vision_tower.post_layernorm.", "vision_tower.vision_model.post_layernorm."),
    ("model.multi_modal_projector.", "multi_modal_projector."),
    ("model.language_model.", "language_model.model."),
)


def vision_dir() -> Path:
    return paths.models_dir() / VISION_DIRNAME


def vision_ready(folder: Path | None = None) -> bool:
    return ((folder or vision_dir()) / VISION_DONE_MARKER).is_file()


def build_config(vocab_size: int = 262_208) -> dict[str, Any]:
    """The model's config.json content (pure): tiny SigLIP tower, 2-layer Gemma 3 text model, labelled random."""
    patches_per_side = IMAGE_SIZE // PATCH_SIZE
    tokens_per_side = int(TOKENS_PER_IMAGE**0.5)
    if tokens_per_side * tokens_per_side != TOKENS_PER_IMAGE or patches_per_side % tokens_per_side:
        raise ValueError("TOKENS_PER_IMAGE must be a square whose side divides IMAGE_SIZE // PATCH_SIZE")
    return {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "_oaicompat_note": f"{LABEL}: assembled by oaicompat (seed {SEED}); its answers are noise, its image "
        "path is real",
        "boi_token_index": BOI_TOKEN_ID,
        "eoi_token_index": EOI_TOKEN_ID,
        "image_token_index": IMAGE_TOKEN_ID,
        "mm_tokens_per_image": TOKENS_PER_IMAGE,
        "initializer_range": 0.02,
        "tie_word_embeddings": True,
        "text_config": {
            "model_type": "gemma3_text",
            "vocab_size": vocab_size,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "query_pre_attn_scalar": 32,
            "layer_types": ["sliding_attention", "full_attention"],
            "sliding_window": 512,
            "max_position_embeddings": 8192,
            "hidden_activation": "gelu_pytorch_tanh",
            "rms_norm_eps": 1e-6,
            "bos_token_id": 2,
            "eos_token_id": 1,
            "pad_token_id": 0,
            "tie_word_embeddings": True,
        },
        "vision_config": {
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": PATCH_SIZE,
            "vision_use_head": False,
        },
    }


def rename_key(key: str, renames: Sequence[tuple[str, str]] = KEY_RENAMES) -> str:
    """``key`` in the Hub layout (pure): the first prefix in ``renames`` that matches is replaced."""
    for old, new in renames:
        if key.startswith(old):
            return new + key[len(old):]
    return key


#: safetensors: an 8-byte little-endian header length, then the JSON header; tensors' offsets are relative to the
#: end of the header, so renaming keys rewrites only the header.
_MAX_HEADER = 100 << 20


def read_safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """The header of a safetensors file and the byte offset where its data begins."""
    with open(path, "rb") as fh:
        raw_len = fh.read(8)
        if len(raw_len) != 8:
            raise ModelIntegrityError(f"{path} is not a safetensors file (shorter than 8 bytes)")
        (length,) = struct.unpack("<Q", raw_len)
        if length > _MAX_HEADER:
            raise ModelIntegrityError(f"{path}: a safetensors header of {length:,} bytes is not plausible")
        text = fh.read(length)
    if len(text) != length:
        raise ModelIntegrityError(f"{path} is truncated inside its safetensors header")
    header = json.loads(text.decode("utf-8"))
    if not isinstance(header, dict):
        raise ModelIntegrityError(f"{path}: the safetensors header is not a JSON object")
    return header, 8 + length


def renamed_header(header: Mapping[str, Any], renames: Sequence[tuple[str, str]] = KEY_RENAMES) -> dict[str, Any]:
    """The header with every tensor key renamed (pure); ``__metadata__`` is kept. Two keys may not collide."""
    out: dict[str, Any] = {}
    for key, value in header.items():
        new = key if key == "__metadata__" else rename_key(key, renames)
        if new in out:
            raise ModelIntegrityError(f"renaming the checkpoint keys maps two tensors to {new!r}")
        out[new] = value
    return out


def encode_header(header: Mapping[str, Any]) -> bytes:
    """The 8-byte length and the JSON header, space-padded to a multiple of 8 bytes (as safetensors writes it)."""
    body = json.dumps(header, separators=(",", ":")).encode("utf-8")
    body += b" " * (-len(body) % 8)
    return struct.pack("<Q", len(body)) + body


def rename_safetensors_keys(path: Path, renames: Sequence[tuple[str, str]] = KEY_RENAMES) -> int:
    """Rewrite ``path`` with its tensor keys in the Hub layout; the tensor bytes are copied unchanged. Returns how
    many keys changed."""
    header, data_start = read_safetensors_header(path)
    new_header = renamed_header(header, renames)
    changed = sum(1 for old, new in zip(header, new_header, strict=True) if old != new)
    if not changed:
        return 0
    with open(path, "rb") as src, atomic_writer(path, binary=True, fsync=False) as out:
        out.write(encode_header(new_header))
        src.seek(data_start)
        while chunk := src.read(1 << 20):
            out.write(chunk)
    return changed


README_TEXT = f"""# {VISION_DIRNAME}: a tiny vision-language model with RANDOM WEIGHTS

Assembled by oaicompat (oaicompat/servers/vision_model.py) for its image-input tests, with random weights
(seed {SEED}): a Gemma3ForConditionalGeneration with a tiny SigLIP vision tower ({IMAGE_SIZE}x{IMAGE_SIZE} images,
{PATCH_SIZE}x{PATCH_SIZE} patches) and a 2-layer Gemma 3 text model, the Gemma 3 tokenizer with
{IMAGE_TOKEN} added as id {IMAGE_TOKEN_ID}, {TOKENS_PER_IMAGE} soft tokens per image.

Random weights: its answers are noise. What is real is the servers' image path: decoding, image processing,
the vision tower, the token counts in usage, and how each server refuses a bad image.
"""

#: Run by the venv interpreter: argv = tokenizer folder (the converted Gemma 3 270M), output dir, config JSON file,
#: seed. Writes the model (fp32 safetensors), the tokenizer with the image token, the processor and the template.
_BUILD_SCRIPT = r"""
import json
import sys
import torch
from transformers import (AutoTokenizer, Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor,
                          GenerationConfig)
from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

src_dir, out_dir, config_file, seed = sys.argv[1:5]
seed = int(seed)
with open(config_file, encoding="utf-8") as fh:
    config_dict = json.load(fh)
tokenizer = AutoTokenizer.from_pretrained(
    src_dir,
    extra_special_tokens={"image_token": "<image_soft_token>", "boi_token": "<start_of_image>",
                          "eoi_token": "<end_of_image>"},
)
tokenizer.add_special_tokens({"additional_special_tokens": ["<image_soft_token>"]})
image_id = tokenizer.convert_tokens_to_ids("<image_soft_token>")
if image_id != config_dict["image_token_index"]:
    raise SystemExit(f"<image_soft_token> got id {image_id}, not {config_dict['image_token_index']}")
if tokenizer.convert_tokens_to_ids("<start_of_image>") != config_dict["boi_token_index"]:
    raise SystemExit("<start_of_image> is not the expected id")
size = config_dict["vision_config"]["image_size"]
image_processor = Gemma3ImageProcessorPil(size={"height": size, "width": size})
processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer,
                            chat_template=tokenizer.chat_template,
                            image_seq_length=config_dict["mm_tokens_per_image"])

note = config_dict.pop("_oaicompat_note")
config = Gemma3Config(**{k: v for k, v in config_dict.items() if k not in ("architectures", "model_type")})
config.architectures = ["Gemma3ForConditionalGeneration"]
config.oaicompat_note = note
torch.manual_seed(seed)
model = Gemma3ForConditionalGeneration(config).to(torch.float32).eval()
# transformers initialises the projector to zeros (every image would embed to 0): random, seeded.
gen = torch.Generator().manual_seed(seed + 1)
with torch.no_grad():
    weight = model.model.multi_modal_projector.mm_input_projection_weight
    weight.copy_(torch.randn(weight.shape, generator=gen, dtype=weight.dtype) * 0.02)
model.generation_config = GenerationConfig(bos_token_id=2, eos_token_id=[1, 106], pad_token_id=0)
model.save_pretrained(out_dir)
processor.save_pretrained(out_dir)
print("built", out_dir, sum(p.numel() for p in model.parameters()), "parameters", flush=True)
"""

#: Run by the venv interpreter after the key rename: loads the folder as a server would and runs one image through
#: the model, so a folder that transformers cannot read back (or whose projector is zero) is never marked done.
_VERIFY_SCRIPT = r"""
import sys
import torch
from PIL import Image
from transformers import AutoProcessor, Gemma3ForConditionalGeneration

folder = sys.argv[1]
model, info = Gemma3ForConditionalGeneration.from_pretrained(folder, output_loading_info=True)
bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
if bad:
    raise SystemExit(f"the built folder does not load cleanly: {bad}")
if not model.model.multi_modal_projector.mm_input_projection_weight.abs().sum() > 0:
    raise SystemExit("the projector is all zeros")
processor = AutoProcessor.from_pretrained(folder)
messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
inputs = processor(text=prompt, images=[Image.new("RGB", (20, 10), (200, 30, 30))], return_tensors="pt")
with torch.no_grad():
    embeds = model.model.get_image_features(inputs["pixel_values"])
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
image_embeds = embeds if isinstance(embeds, torch.Tensor) else embeds.pooler_output
if not image_embeds.abs().sum() > 0:
    raise SystemExit("an image embeds to zeros")
print("verified", folder, "prompt tokens", inputs["input_ids"].shape[-1], "generated", out.shape[-1], flush=True)
"""


def ensure_vision_model(python: Path, log: Path | None = None) -> Path:
    """Return the vision folder, building it once with ``python`` (a venv with torch, transformers and Pillow)."""
    target = vision_dir()
    if vision_ready(target):
        return target
    log = log or paths.new_log_path("build-vision-model")
    tokenizer_dir = model.ensure_hf_model(python, log)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config_file = tmp.parent / f"{VISION_DIRNAME}.config.json"
    config_file.write_text(json.dumps(build_config(), indent=2), encoding="utf-8")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    try:
        run_logged(
            [str(python), "-c", _BUILD_SCRIPT, str(tokenizer_dir), str(tmp), str(config_file), str(SEED)],
            log,
            what=f"building the {LABEL} vision model",
            env=env,
        )
    finally:
        config_file.unlink(missing_ok=True)
    weights = tmp / "model.safetensors"
    if not weights.is_file():
        raise InstallError(f"building the vision model wrote no {weights}; see {log}")
    rename_safetensors_keys(weights)
    (tmp / "README.md").write_text(README_TEXT, encoding="utf-8")
    run_logged([str(python), "-c", _VERIFY_SCRIPT, str(tmp)], log, what="loading the built vision model back",
               env=env)
    (tmp / VISION_DONE_MARKER).write_text(f"{LABEL}, seed {SEED}\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


# --------------------------------------------------------------------------- GGUF + mmproj (llama-server)

GGUF_DIRNAME = f"{VISION_DIRNAME}-gguf"
GGUF_TEXT = "model.gguf"
GGUF_MMPROJ = "mmproj.gguf"
GGUF_DONE_MARKER = ".oaicompat-converted"


def gguf_dir() -> Path:
    return paths.models_dir() / GGUF_DIRNAME


def gguf_ready(folder: Path | None = None) -> bool:
    return ((folder or gguf_dir()) / GGUF_DONE_MARKER).is_file()


def convert_argv(python: Path, converter: Path, source: Path, outfile: Path, *, mmproj: bool) -> list[str]:
    """llama.cpp's own converter: the text model, or with ``--mmproj`` the vision tower and projector."""
    return [str(python), str(converter), str(source), *(["--mmproj"] if mmproj else []),
            "--outfile", str(outfile), "--outtype", "f32"]


def ensure_vision_gguf(python: Path, llama_cpp: Path, log: Path | None = None) -> Path:
    """Return the folder holding the vision model as llama-server reads it (a text GGUF and an mmproj GGUF),
    converting the built folder once with ``llama_cpp``'s ``convert_hf_to_gguf.py`` run by ``python`` (a venv with
    torch and transformers; the converter's ``gguf`` package comes from the same llama.cpp sources)."""
    target = gguf_dir()
    if gguf_ready(target):
        return target
    if not vision_ready():
        raise InstallError(f"the {LABEL} vision folder {vision_dir()} is not built; build it first")
    log = log or paths.new_log_path("convert-vision-gguf")
    converter = llama_cpp / "convert_hf_to_gguf.py"
    if not converter.is_file():
        raise InstallError(f"llama.cpp's sources have no {converter.name} at {converter}")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(llama_cpp / "gguf-py"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        for name, mmproj in ((GGUF_TEXT, False), (GGUF_MMPROJ, True)):
            run_logged(convert_argv(python, converter, vision_dir(), tmp / name, mmproj=mmproj), log,
                       what=f"converting the {LABEL} vision model to {name}", env=env, cwd=tmp)
            if not (tmp / name).is_file():
                raise InstallError(f"convert_hf_to_gguf.py wrote no {name}; see {log}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / "README.md").write_text(README_TEXT, encoding="utf-8")
    (tmp / GGUF_DONE_MARKER).write_text(f"{LABEL}, seed {SEED}, converted by llama.cpp's convert_hf_to_gguf.py\n",
                                        encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


# --------------------------------------------------------------------------- torchvision beside CPU torch (vLLM)

#: vLLM's Gemma 3 multimodal code imports transformers' torchvision image processor. The only torchvision built
#: for torch 2.13 on PyPI is a CUDA build: its pure-Python transforms work beside the CPU torch, but its compiled
#: ops do not register, and its two ``register_fake`` registrations of them then fail at import. The guard makes
#: those two registrations optional; everything else in the file is left as it is.
TORCHVISION_VERSION = "0.28.0"
TORCHVISION_GUARD_MARK = "# oaicompat: guarded register_fake"
_FAKE_OPS = ("torchvision::nms", "torchvision::qnms")
_GUARD_HELPER = f'''

{TORCHVISION_GUARD_MARK} (the CUDA build's compiled ops do not register beside CPU torch)
def _oaicompat_register_fake(name):
    def wrap(fn):
        try:
            return torch.library.register_fake(name)(fn)
        except Exception:  # noqa: BLE001
            return fn
    return wrap
'''


def guard_torchvision_fakes(text: str) -> str:
    """``torchvision/_meta_registrations.py`` with its nms/qnms ``register_fake`` decorators guarded (pure;
    idempotent). InstallError when the file does not look as expected, so a changed torchvision is noticed."""
    if TORCHVISION_GUARD_MARK in text:
        return text
    anchor = "import torchvision.extension  # noqa: F401\n"
    if text.count(anchor) != 1:
        raise InstallError("torchvision/_meta_registrations.py has no `import torchvision.extension` line to "
                           f"guard after: not torchvision {TORCHVISION_VERSION}")
    for op in _FAKE_OPS:
        decorator = f'@torch.library.register_fake("{op}")\n'
        if text.count(decorator) != 1:
            raise InstallError(f"torchvision/_meta_registrations.py does not register {op} once as expected: "
                               f"not torchvision {TORCHVISION_VERSION}")
        text = text.replace(decorator, f'@_oaicompat_register_fake("{op}")\n')
    return text.replace(anchor, anchor + _GUARD_HELPER, 1)
