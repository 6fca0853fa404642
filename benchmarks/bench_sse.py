"""Benchmark: oaicompat.sse vs openai-python's SSEDecoder on a ~1 MB chat-completion stream.

Run ``python benchmarks/bench_sse.py``; ``run()`` returns the numbers as a dict.
The stream is generated here (deterministic seed), never stored as a cassette,
and cut into 1-4 KiB chunks. Each decoder is timed best-of-N, interleaved, with
the garbage collector off during a timed run (as timeit does). No assertion on
speed: the goal is only printed.
"""

from __future__ import annotations

import gc
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oaicompat.sse import parse_sse  # noqa: E402

GOAL = 1.5
SEED = 20240501
TARGET_BYTES = 1_000_000
_WORDS = (
    "The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".", ",", "\n\n",
    " def", " return", "```python\n", " résumé", " naïve", " 日本語", " данные", " 🙂", '"quoted"', "\\",
)  # fmt: skip


def _chunk_obj(index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    """One realistic chat.completion.chunk object."""
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion.chunk",
        "created": 1730000000 + index // 50,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def build_stream(target: int = TARGET_BYTES, seed: int = SEED) -> tuple[bytes, list[bytes], int]:
    """Return (stream, network-like chunks of 1-4 KiB, number of data events before [DONE])."""
    rng = random.Random(seed)
    parts = [_event(_chunk_obj(0, {"role": "assistant", "content": "", "refusal": None}, None))]
    size = len(parts[0])
    while size < target - 600:
        words = "".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))
        parts.append(_event(_chunk_obj(len(parts), {"content": words}, None)))
        size += len(parts[-1])
    parts.append(_event(_chunk_obj(len(parts), {}, "stop")))
    usage = _chunk_obj(len(parts), {}, None)
    usage["choices"] = []
    usage["usage"] = {"prompt_tokens": 42, "completion_tokens": len(parts), "total_tokens": 42 + len(parts)}
    parts.append(_event(usage))
    n_data = len(parts)
    parts.append(b"data: [DONE]\n\n")
    stream = b"".join(parts)
    chunks, pos = [], 0
    while pos < len(stream):
        step = rng.randint(1024, 4096)
        chunks.append(stream[pos : pos + step])
        pos += step
    return stream, chunks, n_data


def _ours(chunks: list[bytes]) -> int:
    return len(parse_sse(chunks).data_events)


def _openai(chunks: list[bytes]) -> int:
    from openai._streaming import SSEDecoder

    count = 0
    for sse in SSEDecoder().iter_bytes(iter(chunks)):
        if sse.data.startswith("[DONE]"):
            break
        count += 1
    return count


def _timed(func: Callable[[list[bytes]], int], chunks: list[bytes]) -> tuple[float, int]:
    """One run with the garbage collector off, as timeit does."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        result = func(chunks)
        return time.perf_counter() - start, result
    finally:
        if enabled:
            gc.enable()


def run(repeat: int = 25) -> dict[str, Any]:
    """Time both decoders (best of ``repeat``, interleaved) and return throughputs in MB/s."""
    stream, chunks, n_data = build_stream()
    ours_t = theirs_t = float("inf")
    ours_n = theirs_n = -1
    for _ in range(repeat):
        t, ours_n = _timed(_ours, chunks)
        ours_t = min(ours_t, t)
        t, theirs_n = _timed(_openai, chunks)
        theirs_t = min(theirs_t, t)
    if not ours_n == theirs_n == n_data:
        raise AssertionError(f"event count mismatch: oaicompat {ours_n}, openai {theirs_n}, expected {n_data}")
    ours_mbs = len(stream) / ours_t / 1e6
    theirs_mbs = len(stream) / theirs_t / 1e6
    return {
        "name": "sse-parse",
        "bytes": len(stream),
        "chunks": len(chunks),
        "events": n_data,
        "oaicompat_mb_s": ours_mbs,
        "openai_mb_s": theirs_mbs,
        "ratio": ours_mbs / theirs_mbs,
        "goal": GOAL,
        "repeat": repeat,
    }


def main() -> int:
    r = run()
    print(
        f"sse-parse: oaicompat {r['oaicompat_mb_s']:.1f} MB/s, openai-python {r['openai_mb_s']:.1f} MB/s, "
        f"ratio {r['ratio']:.2f}x (goal >= {GOAL}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
