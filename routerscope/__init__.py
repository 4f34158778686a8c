"""routerscope: performance observability for Python AI model routers."""

from routerscope._version import __version__

__all__ = ["__version__"]
