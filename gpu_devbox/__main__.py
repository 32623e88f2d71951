"""``python -m gpu_devbox``: the same as the ``gpu-devbox`` command."""

import sys

from gpu_devbox.cli import main

sys.exit(main())
