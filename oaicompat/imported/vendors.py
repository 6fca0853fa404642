"""Request host → oaicompat provider name (providers.yaml), and the path relative to that vendor's base URL.

Only hosted vendors are listed: a recording of localhost or of an unknown host is not third-party evidence
about a vendor oaicompat knows (pass `--vendor` to the importer to file it anyway).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .formats import url_parts


@dataclass(frozen=True)
class VendorHost:
    host: str
    vendor: str
    base_path: str          # the provider's base URL path; request paths are stored relative to it


VENDOR_HOSTS: tuple[VendorHost, ...] = (
    VendorHost("api.openai.com", "openai", "/v1"),
    VendorHost("api.deepseek.com", "deepseek", ""),            # /chat/completions, /v1/… and /beta/… all work
    VendorHost("dashscope-intl.aliyuncs.com", "qwen", "/compatible-mode/v1"),
    VendorHost("dashscope.aliyuncs.com", "qwen-cn", "/compatible-mode/v1"),
    VendorHost("open.bigmodel.cn", "zhipu", "/api/paas/v4"),
    VendorHost("api.z.ai", "zai", "/api/paas/v4"),
    VendorHost("api.moonshot.ai", "moonshot", "/v1"),
    VendorHost("api.moonshot.cn", "moonshot", "/v1"),
    VendorHost("openrouter.ai", "openrouter", "/api/v1"),
    VendorHost("api.siliconflow.com", "siliconflow", "/v1"),
    VendorHost("api.siliconflow.cn", "siliconflow", "/v1"),
    VendorHost("api.together.xyz", "together", "/v1"),
    VendorHost("api.together.ai", "together", "/v1"),
    VendorHost("api.fireworks.ai", "fireworks", "/inference/v1"),
    VendorHost("api.groq.com", "groq", "/openai/v1"),
    VendorHost("api.mistral.ai", "mistral", "/v1"),
    VendorHost("generativelanguage.googleapis.com", "gemini", "/v1beta/openai"),
    VendorHost("api.anthropic.com", "anthropic", "/v1"),
    VendorHost("api.x.ai", "xai", "/v1"),
    VendorHost("api.perplexity.ai", "perplexity", ""),
    VendorHost("api.cerebras.ai", "cerebras", "/v1"),
    VendorHost("ollama.com", "ollama-cloud", "/v1"),
)
# servers people run themselves: recordings of them name localhost or a placeholder, so the importer
# files them only when told (--vendor)
SELF_HOSTED_VENDORS = frozenset({"ollama", "gpustack", "vllm"})

_BY_HOST = {v.host: v for v in VENDOR_HOSTS}
KNOWN_VENDORS = frozenset(v.vendor for v in VENDOR_HOSTS) | SELF_HOSTED_VENDORS

# API paths under a base URL; used when a vendor serves the same API under several prefixes
API_ENDPOINTS = _ENDPOINTS = ("/chat/completions", "/completions", "/embeddings", "/models", "/responses", "/messages",
              "/audio/transcriptions", "/audio/speech", "/images/generations", "/moderations")


def vendor_for_host(host: str) -> str | None:
    entry = _BY_HOST.get(host.lower().rstrip("."))
    return entry.vendor if entry else None


def vendor_for_url(url: str) -> str | None:
    host, _ = url_parts(url)
    return vendor_for_host(host)


def relative_path(url: str, vendor: str | None = None) -> str:
    """The request path relative to the vendor's base URL: /chat/completions for every chat request."""
    host, path = url_parts(url)
    entry = _BY_HOST.get(host)
    if entry is not None and entry.base_path and path.startswith(entry.base_path + "/"):
        return path[len(entry.base_path):]
    for endpoint in _ENDPOINTS:   # /v1/chat/completions, /beta/chat/completions, /api/v1/… → /chat/completions
        i = path.find(endpoint)
        if i >= 0 and path.endswith(endpoint):
            return path[i:]
    return path


_OPENROUTER_ID = re.compile(r'"id"\s*:\s*"gen-\d{6,}-[A-Za-z0-9]+"')


def sniff_vendor(url_vendor: str | None, response_text: str) -> tuple[str | None, str | None]:
    """Correct a vendor whose URI the recorder rewrote. Returns (vendor, note or None).

    simonw/llm's `test_tools_streaming_variant_*` cassettes say api.openai.com, but the bodies are
    OpenRouter's (`gen-<unix>-<id>` ids and a top-level `provider` naming the upstream).
    """
    if url_vendor == "openai" and _OPENROUTER_ID.search(response_text) and '"provider"' in response_text:
        return "openrouter", ("the URI says api.openai.com but the body is OpenRouter traffic (gen- ids and a "
                              "top-level provider field): the recorder rewrote the host; filed under openrouter")
    return url_vendor, None


NO_MODEL = "(none)"     # an exchange that names no model (e.g. GET /models): never the provider's default


def _model_field(obj: object) -> str | None:
    if isinstance(obj, dict) and isinstance(obj.get("model"), str) and obj["model"].strip():
        return obj["model"][:200]
    return None


def _first_json(text: str, framing: str) -> object:
    """The response's JSON object: the whole body, else the first SSE data event, else the first chunk line."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    for line in text.split("\n"):
        line = line.strip()
        if framing != "data-lines-only":
            if not line.startswith("data:"):
                continue
            line = line[5:].strip()
        if not line or line == "[DONE]":
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and "model" in obj:
            return obj
    return None


def model_of(request_body: bytes, response_body: bytes, framing: str = "joined") -> str:
    """The model the request names, else the one the response names, else NO_MODEL. Never a default."""
    try:
        found = _model_field(json.loads(request_body)) if request_body else None
    except (ValueError, RecursionError, UnicodeDecodeError):
        found = None
    if found:
        return found
    text = response_body[:2_000_000].decode("utf-8", "replace")
    return _model_field(_first_json(text, framing)) or NO_MODEL
