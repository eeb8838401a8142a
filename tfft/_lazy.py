"""Module-level names imported on first use (PEP 562), so importing a package stays cheap."""

import importlib


def lazy_getattr(package, exports):
    """A module `__getattr__` resolving `exports` ({name: module}) on first access."""
    def __getattr__(name):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
