"""`gpu-devbox images size`: a built image's sizes per layer group, and its budget.

The image is a real OCI layout (the format `podman save --format oci-dir --compress` and
`docker save` write): gzip-compressed tar layers, a manifest and a config with the history of
the Dockerfile steps. images/test-build.sh runs the same command on the real CPU image.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from gpu_devbox.catalog import default_catalog_text
from gpu_devbox.images import size

EXE = shutil.which("gpu-devbox") or ""

# As BuildKit records the steps (COPY with its sources) and, for the base, as buildah does.
STEPS = [
    ("/bin/sh -c #(nop) ADD file:abc in / ", 300_000),
    ("COPY images/install.sh /usr/local/lib/gpu-devbox/install.sh # buildkit", 5_000),
    ("RUN /usr/local/lib/gpu-devbox/install.sh system # buildkit", 200_000),
    ("COPY images/locks/cpu.txt /tmp/gpu-devbox/lock.txt # buildkit", 2_000),
    ("RUN /usr/local/lib/gpu-devbox/install.sh python /tmp/gpu-devbox/lock.txt", 900_000),
    ("/bin/sh -c #(nop) COPY file:0a1b in /tmp/gpu-devbox/ ", 50_000),  # buildah: the wheel
    ("RUN /usr/local/lib/gpu-devbox/install.sh gpu-devbox /tmp/gpu-devbox", 60_000),
    ("/bin/sh -c #(nop) COPY dir:2c3d in /opt/gpu-devbox/examples/ ", 3_000),
]


def blob(root: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def layer(payload: int) -> bytes:
    """A gzip tar holding one file of ``payload`` pseudo-random bytes (so gzip cannot shrink
    it to nothing)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = hashlib.shake_256(str(payload).encode()).digest(payload)
        info = tarfile.TarInfo("file")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


def oci_layout(root: Path) -> int:
    """Write an image of :data:`STEPS`; its uncompressed size."""
    layers, history, total = [], [], 0
    for created_by, payload in STEPS:
        data = layer(payload)
        digest, length = blob(root, data)
        layers.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest,
                "size": length,
            }
        )
        history.append({"created_by": created_by})
        history.append({"created_by": "ARG X=1", "empty_layer": True})
        total += len(gzip.decompress(data))
    config = {"architecture": "amd64", "os": "linux", "history": history, "rootfs": {}}
    config_digest, config_size = blob(root, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": layers,
    }
    manifest_digest, manifest_size = blob(root, json.dumps(manifest).encode())
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": manifest_digest,
                        "size": manifest_size,
                    }
                ],
            }
        )
    )
    return total


def test_layers_are_grouped_by_the_step_that_made_them(tmp_path: Path) -> None:
    total = oci_layout(tmp_path)
    measured = size.measure(tmp_path)
    assert measured.uncompressed == total
    assert measured.compressed == sum(
        p.stat().st_size for p in (tmp_path / "blobs/sha256").iterdir()
    ) - sum(
        len(p.read_bytes())
        for p in (tmp_path / "blobs/sha256").iterdir()
        if p.read_bytes()[:1] == b"{"
    )
    groups = {name: (count, unpacked) for name, count, _packed, unpacked in measured.groups()}
    assert list(groups) == [
        "Base image",
        "Scripts and the lock",
        "OS packages",
        "Python environment (lock: base)",
        "gpu-devbox and examples",
    ]
    assert groups["Base image"][0] == 1
    assert groups["Scripts and the lock"][0] == 2  # install.sh and the lock
    assert groups["gpu-devbox and examples"][0] == 3
    assert groups["Python environment (lock: base)"][1] > 900_000


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    assert EXE, "the gpu-devbox command is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_DEVBOX_")}
    return subprocess.run(
        [EXE, "images", "size", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


def test_the_budget_is_checked(tmp_path: Path) -> None:
    layout = tmp_path / "oci"
    total = oci_layout(layout)
    within = tmp_path / "within.yaml"
    within.write_text(default_catalog_text().replace("size_budget: 1434Mi", "size_budget: 2Mi"))
    ok = cli("cpu", "--oci", str(layout), "--catalog", str(within))
    assert ok.returncode == 0, ok.stderr
    assert "| **total** | 8 |" in ok.stdout
    assert "Budget 2.00 MiB uncompressed: within it." in ok.stdout
    over = tmp_path / "over.yaml"
    over.write_text(default_catalog_text().replace("size_budget: 1434Mi", "size_budget: 1Mi"))
    too_big = cli("cpu", "--oci", str(layout), "--catalog", str(over), "--json")
    assert too_big.returncode == 1
    document = json.loads(too_big.stdout)
    assert document["uncompressed"] == total
    assert document["within_budget"] is False
    assert too_big.stderr.strip() == (
        f"cpu is {size.human(total)} uncompressed, over its budget of 1.00 MiB "
        "(the catalog's size_budget)"
    )


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    for args, words in (
        (["cpu", "--oci", str(tmp_path)], "cannot read"),
        (["cuda99", "--oci", str(tmp_path)], "no image named 'cuda99'"),
    ):
        result = cli(*args)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert words in result.stderr
