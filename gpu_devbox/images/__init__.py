"""The notebook images' build tooling, generated from the catalog (plain Python, no I/O).

``plan`` turns a catalog's ``build: true`` images into builds (base, repository, tags);
``bake`` writes the CI matrix and the ``docker buildx bake`` file; ``docs`` the README's
"which image for which driver" table; ``audit`` judges each nvidia/cuda base's lifecycle.
The command line is ``gpu-devbox images`` (gpu_devbox/cli/images.py).
"""
