"""deconfetti: find, explain and remove confetti in CASA tclean image cubes."""

from importlib.resources import files as _files

__version__ = "0.1.0"

from .errors import DeconfettiWarning, InputError  # noqa: E402
from .io.products import Products, open_products  # noqa: E402
from .scan import ScanResult, scan  # noqa: E402
from .repaired import write_repaired  # noqa: E402

__all__ = ["open_products", "scan", "ScanResult", "write_repaired", "Products", "InputError",
           "DeconfettiWarning", "example_path", "__version__"]


def example_path() -> str:
    """Imagename prefix of the small real tclean example shipped with the package."""
    return str(_files("deconfetti") / "data" / "example" / "example")
