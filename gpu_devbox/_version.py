"""The single source of gpu-devbox's version (read by hatch and by the Lab extension check)."""

__version__ = "0.1.0"
