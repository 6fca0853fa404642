"""The vision model with random weights: its config, the checkpoint key rename (a safetensors header rewrite done
without torch), and its server spec. The build itself runs in a venv with torch (``servers up``), not here."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from oaicompat import config as oconfig
from oaicompat.paths import PROVIDERS_FILE
from oaicompat.servers import paths, specs, vision_model
from oaicompat.servers.errors import ModelIntegrityError

KEY = "sk-test-0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(paths.CACHE_ENV, str(root))
    return root


def _safetensors(path: Path, tensors: dict[str, bytes]) -> None:
    """A minimal safetensors file: F32 vectors, in order, with a metadata entry."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, data in tensors.items():
        header[name] = {"dtype": "F32", "shape": [len(data) // 4], "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    body = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body)) + body + b"".join(tensors.values()))


def _tensor(path: Path, name: str) -> bytes:
    header, start = vision_model.read_safetensors_header(path)
    begin, end = header[name]["data_offsets"]
    return path.read_bytes()[start + begin:start + end]


def test_the_config_is_labelled_random_weights_and_consistent() -> None:
    cfg = vision_model.build_config()
    assert "random weights" in cfg["_oaicompat_note"]
    assert cfg["architectures"] == ["Gemma3ForConditionalGeneration"]
    assert cfg["image_token_index"] == 262_144 < cfg["text_config"]["vocab_size"]
    assert cfg["mm_tokens_per_image"] == 16
    vision = cfg["vision_config"]
    patches = vision["image_size"] // vision["patch_size"]
    assert patches % 4 == 0  # the projector pools the patch grid down to 4x4 = 16 tokens
    assert cfg["text_config"]["num_hidden_layers"] == len(cfg["text_config"]["layer_types"]) == 2
    assert vision_model.build_config() == cfg  # deterministic


def test_the_readme_and_done_marker_say_random_weights() -> None:
    assert "RANDOM WEIGHTS" in vision_model.README_TEXT
    assert "random weights" in vision_model.LABEL


@pytest.mark.parametrize(("saved", "hub"), [
    ("model.vision_tower.embeddings.patch_embedding.weight", "vision_tower.vision_model.embeddings.patch_embedding.weight"),
    ("model.vision_tower.encoder.layers.0.mlp.fc1.bias", "vision_tower.vision_model.encoder.layers.0.mlp.fc1.bias"),
    ("vision_tower.embeddings.position_embedding.weight", "vision_tower.vision_model.embeddings.position_embedding.weight"),
    ("vision_tower.post_layernorm.weight", "vision_tower.vision_model.post_layernorm.weight"),
    ("vision_tower.vision_model.post_layernorm.weight", "vision_tower.vision_model.post_layernorm.weight"),
    ("model.multi_modal_projector.mm_input_projection_weight", "multi_modal_projector.mm_input_projection_weight"),
    ("model.language_model.layers.1.self_attn.q_proj.weight", "language_model.model.layers.1.self_attn.q_proj.weight"),
    ("lm_head.weight", "lm_head.weight"),
])
def test_rename_key_gives_the_hub_layout(saved: str, hub: str) -> None:
    assert vision_model.rename_key(saved) == hub
    assert vision_model.rename_key(hub) == hub  # idempotent


def test_renaming_rewrites_the_header_and_keeps_every_tensor_byte(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    tensors = {
        "model.vision_tower.embeddings.patch_embedding.weight": struct.pack("<3f", 1.0, 2.0, 3.0),
        "model.multi_modal_projector.mm_input_projection_weight": struct.pack("<2f", 0.5, -0.5),
        "model.language_model.embed_tokens.weight": struct.pack("<1f", 7.0),
    }
    _safetensors(path, tensors)
    assert vision_model.rename_safetensors_keys(path) == 3
    header, start = vision_model.read_safetensors_header(path)
    assert start % 8 == 0  # the header is padded as safetensors writes it
    assert header["__metadata__"] == {"format": "pt"}
    assert _tensor(path, "vision_tower.vision_model.embeddings.patch_embedding.weight") == struct.pack(
        "<3f", 1.0, 2.0, 3.0)
    assert _tensor(path, "multi_modal_projector.mm_input_projection_weight") == struct.pack("<2f", 0.5, -0.5)
    assert _tensor(path, "language_model.model.embed_tokens.weight") == struct.pack("<1f", 7.0)
    before = path.read_bytes()
    assert vision_model.rename_safetensors_keys(path) == 0  # nothing left to rename: the file is untouched
    assert path.read_bytes() == before


def test_two_keys_renamed_to_one_name_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    _safetensors(path, {"model.vision_tower.post_layernorm.weight": b"\0" * 4,
                        "vision_tower.post_layernorm.weight": b"\0" * 4})
    before = path.read_bytes()
    with pytest.raises(ModelIntegrityError, match="two tensors"):
        vision_model.rename_safetensors_keys(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("data", [b"", b"\x01\x02", struct.pack("<Q", 1 << 40), struct.pack("<Q", 100) + b"{}"])
def test_a_file_that_is_not_safetensors_is_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    with pytest.raises(ModelIntegrityError):
        vision_model.read_safetensors_header(path)


def test_the_vision_folder_is_ready_only_with_its_marker(cache: Path) -> None:
    folder = vision_model.vision_dir()
    assert folder == cache / "models" / vision_model.VISION_DIRNAME
    assert not vision_model.vision_ready()
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert not vision_model.vision_ready()
    (folder / vision_model.VISION_DONE_MARKER).write_text("random weights\n")
    assert vision_model.vision_ready()


def test_transformers_serve_vision_serves_the_vision_folder_in_its_own_venv() -> None:
    spec = specs.SPECS["transformers-serve-vision"]
    text = specs.SPECS["transformers-serve"]
    assert not spec.starts_by_default
    assert isinstance(spec, specs.TransformersServeVisionSpec) and isinstance(text, specs.TransformersServeSpec)
    assert spec.venv_name != text.venv_name  # the text server's venv is left as it is
    assert any(r.startswith("pillow==") for r in spec.requirements)
    assert "torchvision" in spec.uninstall
    argv = spec.argv(5555, KEY)
    assert vision_model.VISION_DIRNAME in argv and specs.paths.HF_MODEL_DIRNAME not in argv
    assert text.argv(5555, KEY)[2] == specs.paths.HF_MODEL_DIRNAME  # the text server unchanged
    assert spec.model_id == vision_model.VISION_MODEL_ID
    assert not spec.installed()  # nothing in the (empty) test cache


def test_the_vision_provider_is_declared_vision_capable_and_random_weights() -> None:
    providers = oconfig.load_providers(PROVIDERS_FILE, env={})
    entry = providers.providers["transformers-serve-vision"]
    assert entry.supports.get("vision") is True
    assert entry.model == vision_model.VISION_MODEL_ID
    assert "random weights" in entry.title.lower()
    assert "random weights" in (entry.notes or "").lower()


_META_REGISTRATIONS = '''import functools

import torch
import torch._custom_ops
import torch.library

# Ensure that torch.ops.torchvision is visible
import torchvision.extension  # noqa: F401


@torch.library.register_fake("torchvision::nms")
def meta_nms(dets, scores, iou_threshold):
    return dets


@torch.library.register_fake("torchvision::qnms")
def meta_qnms(dets, scores, iou_threshold):
    return dets
'''


def test_the_torchvision_guard_wraps_exactly_the_two_fake_registrations() -> None:
    guarded = vision_model.guard_torchvision_fakes(_META_REGISTRATIONS)
    assert "@torch.library.register_fake(" not in guarded
    assert guarded.count('@_oaicompat_register_fake("torchvision::nms")') == 1
    assert guarded.count('@_oaicompat_register_fake("torchvision::qnms")') == 1
    assert guarded.index("def _oaicompat_register_fake") < guarded.index("def meta_nms")
    assert vision_model.guard_torchvision_fakes(guarded) == guarded  # idempotent
    compile(guarded, "_meta_registrations.py", "exec")  # still Python


def test_the_guarded_registration_survives_an_op_that_does_not_register() -> None:
    guarded = vision_model.guard_torchvision_fakes(_META_REGISTRATIONS)
    calls: list[str] = []

    class Library:
        @staticmethod
        def register_fake(name: str) -> object:
            calls.append(name)
            raise RuntimeError(f"operator {name} does not exist")  # as the CUDA build's ops beside CPU torch

    class Torch:
        library = Library

    namespace: dict[str, object] = {"torch": Torch}
    helper = guarded[guarded.index("def _oaicompat_register_fake"):guarded.index("@_oaicompat_register_fake")]
    exec(helper, namespace)  # noqa: S102 - the helper the guard inserts, run against a fake torch
    register = namespace["_oaicompat_register_fake"]
    assert callable(register)

    def fn() -> int:
        return 1

    assert register("torchvision::nms")(fn) is fn
    assert calls == ["torchvision::nms"]


@pytest.mark.parametrize("text", [
    _META_REGISTRATIONS.replace("import torchvision.extension  # noqa: F401\n", ""),
    _META_REGISTRATIONS.replace('@torch.library.register_fake("torchvision::qnms")\n', ""),
])
def test_an_unexpected_torchvision_file_is_refused(text: str) -> None:
    from oaicompat.servers.errors import InstallError

    with pytest.raises(InstallError, match="not torchvision"):
        vision_model.guard_torchvision_fakes(text)


def test_vllm_vision_serves_the_same_folder_from_its_own_venv() -> None:
    spec = specs.SPECS["vllm-vision"]
    text = specs.SPECS["vllm"]
    assert isinstance(spec, specs.VllmVisionSpec)
    assert not spec.starts_by_default
    assert spec.venv_name != text.venv_name
    argv = spec.argv(5555, KEY)
    assert argv[argv.index("--model") + 1] == str(vision_model.vision_dir())
    assert argv[argv.index("--served-model-name") + 1] == vision_model.VISION_MODEL_ID
    assert not spec.installed()


# --------------------------------------------------------------------------- the build's orchestration, torch-free

#: Stands in for the venv's python: given the build script (six arguments) it writes a checkpoint with the keys
#: transformers 5 writes; given the verify script (three) it records that it was asked and exits FAIL_VERIFY.
_FAKE_PYTHON = r'''#!{python}
import json, os, struct, sys
args = sys.argv[1:]
if len(args) == 6:   # -c BUILD tokenizer_dir out_dir config_file seed
    out = args[3]
    assert json.load(open(args[4]))["_oaicompat_note"].startswith("random weights")
    names = ["model.vision_tower.embeddings.patch_embedding.weight", "model.language_model.norm.weight"]
    header = {{n: {{"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}} for i, n in enumerate(names)}}
    body = json.dumps(header).encode()
    with open(os.path.join(out, "model.safetensors"), "wb") as fh:
        fh.write(struct.pack("<Q", len(body)) + body + struct.pack("<2f", 1.0, 2.0))
    open(os.path.join(out, "config.json"), "w").write("{{}}")
elif len(args) == 3:  # -c VERIFY folder
    open(os.path.join(os.environ["FAKE_LOG_DIR"], "verified"), "w").write(args[2])
    sys.exit(int(os.environ.get("FAIL_VERIFY", "0")))
else:
    sys.exit(f"unexpected argv {{args}}")
'''


def _fake_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> Path:
    import sys

    from oaicompat.servers import model as gemma

    script = tmp_path / "fake-python"
    script.write_text(_FAKE_PYTHON.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("FAKE_LOG_DIR", str(tmp_path))
    tokenizer_dir = paths.hf_model_dir()  # the converted Gemma folder, already there
    tokenizer_dir.mkdir(parents=True)
    (tokenizer_dir / gemma.HF_DONE_MARKER).write_text("x\n")
    return script


def test_a_build_renames_the_keys_writes_the_label_and_marks_the_folder_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    python = _fake_python(tmp_path, monkeypatch, cache)
    folder = vision_model.ensure_vision_model(python, tmp_path / "build.log")
    assert folder == vision_model.vision_dir() and vision_model.vision_ready()
    header, _ = vision_model.read_safetensors_header(folder / "model.safetensors")
    assert set(header) == {"vision_tower.vision_model.embeddings.patch_embedding.weight",
                           "language_model.model.norm.weight"}
    assert "RANDOM WEIGHTS" in (folder / "README.md").read_text()
    assert "random weights" in (folder / vision_model.VISION_DONE_MARKER).read_text()
    assert (tmp_path / "verified").read_text().endswith(".tmp")  # checked before it took its final name
    assert not list(folder.parent.glob("*.tmp")) and not list(folder.parent.glob("*.config.json"))
    (tmp_path / "verified").unlink()
    assert vision_model.ensure_vision_model(python, tmp_path / "build.log") == folder  # once: no second build
    assert not (tmp_path / "verified").exists()


def test_a_build_that_does_not_load_back_is_not_marked_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    from oaicompat.servers.errors import InstallError

    python = _fake_python(tmp_path, monkeypatch, cache)
    monkeypatch.setenv("FAIL_VERIFY", "1")
    with pytest.raises(InstallError, match="loading the built vision model back"):
        vision_model.ensure_vision_model(python, tmp_path / "build.log")
    assert not vision_model.vision_ready()
    assert not vision_model.vision_dir().exists()


# --------------------------------------------------------------------------- llama-server's GGUF + mmproj


def test_llama_server_vision_loads_the_converted_gguf_and_its_mmproj() -> None:
    spec = specs.SPECS["llama-server-vision"]
    assert isinstance(spec, specs.LlamaServerVisionSpec) and not spec.starts_by_default
    argv = spec.argv(5555, KEY)
    folder = vision_model.gguf_dir()
    assert argv[argv.index("-m") + 1] == str(folder / vision_model.GGUF_TEXT)
    assert argv[argv.index("--mmproj") + 1] == str(folder / vision_model.GGUF_MMPROJ)
    assert argv[argv.index("-a") + 1] == vision_model.VISION_MODEL_ID
    assert "--chat-template-file" not in argv  # the template the converter embedded
    entry = oconfig.load_providers(PROVIDERS_FILE, env={}).providers["llama-server-vision"]
    assert entry.supports.get("vision") is True and "random weights" in entry.title.lower()


#: Stands in for the venv's python running llama.cpp's converter: writes the --outfile it is given.
_FAKE_CONVERTER_PYTHON = r'''#!{python}
import os, sys
args = sys.argv[1:]
assert args[0].endswith("convert_hf_to_gguf.py") and os.environ["PYTHONPATH"].endswith("gguf-py"), args
open(args[args.index("--outfile") + 1], "wb").write(b"GGUF" + (b"mm" if "--mmproj" in args else b"tx"))
sys.exit(int(os.environ.get("FAIL_CONVERT", "0")))
'''


def _converter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    import sys

    python = tmp_path / "fake-python"
    python.write_text(_FAKE_CONVERTER_PYTHON.format(python=sys.executable))
    python.chmod(0o755)
    llama_cpp = tmp_path / "llama.cpp"
    llama_cpp.mkdir()
    (llama_cpp / "convert_hf_to_gguf.py").write_text("# stand-in\n")
    vision_model.vision_dir().mkdir(parents=True)
    (vision_model.vision_dir() / vision_model.VISION_DONE_MARKER).write_text("random weights\n")
    return python, llama_cpp


def test_the_gguf_conversion_writes_text_and_mmproj_once_and_says_random_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    python, llama_cpp = _converter(tmp_path, monkeypatch)
    folder = vision_model.ensure_vision_gguf(python, llama_cpp, tmp_path / "conv.log")
    assert folder == vision_model.gguf_dir() and vision_model.gguf_ready()
    assert (folder / vision_model.GGUF_TEXT).read_bytes() == b"GGUFtx"
    assert (folder / vision_model.GGUF_MMPROJ).read_bytes() == b"GGUFmm"
    assert "RANDOM WEIGHTS" in (folder / "README.md").read_text()
    assert "random weights" in (folder / vision_model.GGUF_DONE_MARKER).read_text()
    (folder / vision_model.GGUF_TEXT).write_bytes(b"kept")
    assert vision_model.ensure_vision_gguf(python, llama_cpp, tmp_path / "conv.log") == folder
    assert (folder / vision_model.GGUF_TEXT).read_bytes() == b"kept"  # converted once


def test_a_failed_conversion_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    from oaicompat.servers.errors import InstallError

    python, llama_cpp = _converter(tmp_path, monkeypatch)
    monkeypatch.setenv("FAIL_CONVERT", "1")
    with pytest.raises(InstallError, match="converting the random weights vision model"):
        vision_model.ensure_vision_gguf(python, llama_cpp, tmp_path / "conv.log")
    assert not vision_model.gguf_ready() and not vision_model.gguf_dir().exists()
    assert not list(vision_model.gguf_dir().parent.glob("*.tmp"))


def test_the_conversion_needs_the_built_folder(tmp_path: Path, cache: Path) -> None:
    from oaicompat.servers.errors import InstallError

    with pytest.raises(InstallError, match="is not built"):
        vision_model.ensure_vision_gguf(tmp_path / "python", tmp_path, tmp_path / "conv.log")
