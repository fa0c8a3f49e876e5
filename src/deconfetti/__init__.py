"""deconfetti: find, explain and remove confetti in CASA tclean image cubes.

The public names are imported on first use, so that ``import deconfetti`` (and the
command line's ``--help``) stays fast.
"""

from importlib import import_module as _import_module
from importlib.resources import files as _files

__version__ = "0.1.0"

#: public name -> the module that owns it
_PUBLIC = {
    "open_products": "io.products", "Products": "io.products",
    "scan": "pipeline", "ScanResult": "pipeline",
    "scan_to_folder": "workflow", "read_scan": "workflow", "repair_scan": "workflow",
    "scan_many": "workflow", "candidate_figures": "workflow",
    "write_repaired": "repair", "Config": "config", "load_config": "config",
    "InputError": "errors", "DeconfettiWarning": "errors",
}

__all__ = [*_PUBLIC, "example_path", "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(_import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deconfetti' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def example_path() -> str:
    """Imagename prefix of the small real tclean example shipped with the package."""
    return str(_files("deconfetti") / "data" / "example" / "example")
