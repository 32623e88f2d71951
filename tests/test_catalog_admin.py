"""The catalog fields of a hub as admins run it: groups, GPU quotas, image metadata, created
claims, and the shipped fine-tuning profile. Old catalogs stay valid."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from gpu_devbox.catalog import CatalogError, GPUKind, default_catalog, load_catalog, parse_catalog
from gpu_devbox.catalog.units import parse_size

FIXTURES = Path(__file__).parent / "fixtures"

BASE: dict[str, Any] = {
    "version": 1,
    "images": [
        {"name": "cpu", "reference": "example/nb:cpu", "cuda": None},
        {"name": "cu13", "reference": "example/nb:cu13", "cuda": "13.0"},
    ],
    "profiles": [
        {"slug": "cpu", "display_name": "CPU", "images": ["cpu"]},
        {"slug": "one", "display_name": "1 GPU", "gpu": {"count": 1}, "images": ["cu13"]},
    ],
}


def catalog_with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def test_old_catalogs_stay_valid_and_limit_nothing() -> None:
    catalog = load_catalog(FIXTURES / "placement-catalog.yaml")
    assert catalog.max_gpus is None
    assert catalog.quota_for(["anyone"]) is None
    assert all(p.groups is None for p in catalog.profiles)
    image = catalog.images[0]
    assert (image.packages, image.gpu_required, image.memory_recommended) == ((), False, None)


def test_groups_and_quotas() -> None:
    data = catalog_with(
        max_gpus=2,
        groups={"research": {"max_gpus": {"whole": 4, "mig": 8}}, "course": {"max_gpus": 1}},
    )
    data["profiles"][1]["groups"] = ["research", "staff"]
    catalog = parse_catalog(data)
    assert catalog.profile("one").groups == ("research", "staff")
    assert catalog.profile("cpu").groups is None
    everyone = catalog.quota_for([])
    assert everyone is not None
    assert [everyone.limit(k) for k in (GPUKind.WHOLE, GPUKind.MIG, GPUKind.SHARED)] == [2, 2, 2]
    research = catalog.quota_for(["research"])
    assert research is not None
    # a group's limit replaces the top-level one; the kinds it leaves out are unlimited
    assert [research.limit(k) for k in (GPUKind.WHOLE, GPUKind.MIG, GPUKind.SHARED)] == [
        4,
        8,
        None,
    ]
    both = catalog.quota_for(["course", "research"])
    assert both is not None
    # in several groups: the largest limit per kind
    assert [both.limit(k) for k in (GPUKind.WHOLE, GPUKind.MIG, GPUKind.SHARED)] == [4, 8, None]
    assert everyone.limit(GPUKind.NONE) is None  # a CPU profile is never limited


def test_image_metadata() -> None:
    data = catalog_with()
    data["images"][1].update(
        packages=["PyTorch 2.14", "transformers 5.23"],
        gpu_required=True,
        memory_recommended="64Gi",
    )
    image = parse_catalog(data).image("cu13")
    assert image.packages == ("PyTorch 2.14", "transformers 5.23")
    assert image.gpu_required is True
    assert image.memory_recommended == parse_size("64Gi")


def test_a_gpu_only_image_is_never_offered_without_a_gpu() -> None:
    data = catalog_with()
    data["images"][1]["gpu_required"] = True
    data["profiles"][0]["images"] = ["cpu", "cu13"]
    with pytest.raises(CatalogError, match=r"profiles\[0\]\.images\[1\]: 'cu13' needs a GPU"):
        parse_catalog(data)


def test_a_created_claim() -> None:
    volume = {
        "name": "notebooks",
        "claim": "notebooks-shared",
        "size": "100Gi",
        "access_mode": "ReadWriteMany",
        "storage_class": "nfs-client",
        "sub_path": "{username}",
        "mount": "/home/jovyan/work",
    }
    catalog = parse_catalog(catalog_with(defaults={"volumes": [volume]}))
    (parsed,) = catalog.profile("one").volumes
    assert (parsed.claim, parsed.size, parsed.access_mode) == (
        "notebooks-shared",
        parse_size("100Gi"),
        "ReadWriteMany",
    )
    assert (parsed.storage_class, parsed.sub_path) == ("nfs-client", "{username}")


@pytest.mark.parametrize(
    ("volumes", "message"),
    [
        (
            [{"name": "s", "scratch": "1Gi", "size": "1Gi", "mount": "/s"}],
            r"volumes\[0\]\.size: needs a claim",
        ),
        (
            [{"name": "n", "claim": "c", "access_mode": "ReadWriteMany", "mount": "/n"}],
            r"volumes\[0\]\.access_mode: needs size",
        ),
        (
            [{"name": "n", "claim": "c", "size": "1Gi", "access_mode": "ReadAll", "mount": "/n"}],
            r"volumes\[0\]\.access_mode",
        ),
        (
            [
                {"name": "a", "claim": "a", "size": "1Gi", "mount": "/a"},
                {"name": "b", "claim": "b", "size": "1Gi", "mount": "/b"},
            ],
            r"volumes\[1\]\.size: only one volume per profile may be created",
        ),
    ],
)
def test_bad_claims_name_the_field(volumes: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(catalog_with(defaults={"volumes": volumes}))


def test_the_shipped_fine_tuning_profile() -> None:
    catalog = default_catalog()
    finetune = catalog.profile("finetune")
    one = catalog.profile("gpu-1")
    # 1 or 2 large-memory GPUs
    assert (finetune.gpu.count, finetune.gpu.max_count) == (1, 2)
    assert finetune.gpu.min_memory is not None
    assert finetune.gpu.min_memory >= parse_size("40Gi")
    # more CPU, memory and /dev/shm than the everyday GPU profile
    assert finetune.cpu.limit > one.cpu.limit
    assert finetune.memory.limit > one.memory.limit
    assert finetune.shm is not None
    assert one.shm is None or finetune.shm > one.shm
    # the fine-tuning image first, the PyTorch image as the alternative
    assert finetune.images[0] == "cuda13-finetune"
    image = catalog.image("cuda13-finetune")
    assert image.gpu_required
    assert image.memory_recommended is not None
    assert image.memory_recommended <= finetune.memory.limit
