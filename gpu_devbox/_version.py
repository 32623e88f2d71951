"""gpu-devbox's version, generated from labextension/package.json at build time."""

__version__ = "0.1.0"
