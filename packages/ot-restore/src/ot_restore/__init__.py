"""ot-restore: see the package README. The methods land in their own issues."""

from importlib.metadata import version as _version

__version__ = _version("ot-restore")
__all__ = ["__version__"]
