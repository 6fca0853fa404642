"""Every conformance check, one module per area. Importing this package registers them all."""

import importlib
import pkgutil

_HELPERS = {"base", "streamview"}

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in _HELPERS and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")
