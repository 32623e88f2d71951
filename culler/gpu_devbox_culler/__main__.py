"""``python -m gpu_devbox_culler``: the same as the ``gpu-devbox-culler`` command."""

from __future__ import annotations

import sys

from gpu_devbox_culler.app import main

if __name__ == "__main__":
    sys.exit(main())
