"""Every conformance check, one module per area. Importing this package registers them all.

AREAS fixes the registration order (the order of CHECKS and PROBES, which results and reports follow);
an area module this list does not name is registered after them, in name order. READERS register nothing:
they are what the areas share (checks/base.py, checks/common.py, the stream and tool-call readers).
"""

import importlib
import pkgutil

READERS = frozenset({"base", "common", "requires", "streamview", "tool_calls"})
AREAS = ("chat", "image", "context", "endpoints", "errors", "json_output", "models", "params", "reasoning",
         "stream", "sdk", "tools_probes", "tools", "limits")

for _module in (*AREAS, *sorted(m.name for m in pkgutil.iter_modules(__path__))):
    if _module not in READERS and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")
