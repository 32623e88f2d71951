"""The catalog loader: the shipped catalog, and a clear error for every kind of bad field."""

from __future__ import annotations

import copy
import datetime
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gpu_devbox.catalog import (
    Architecture,
    CatalogError,
    default_catalog,
    default_catalog_text,
    load_catalog,
    matches_model,
    parse_catalog,
    parse_catalog_text,
    schema,
    validation,
)
from gpu_devbox.catalog.units import format_size, parse_cpu, parse_size
from gpu_devbox.cuda import tables
from gpu_devbox.images import audit
from gpu_devbox.placement import ClusterState, compute_offers
from tests import k8s_objects as k

VALIDATOR = jsonschema.Draft202012Validator(schema())

BASE: dict[str, Any] = {
    "version": 1,
    "defaults": {
        "memory": "4Gi",
        "volumes": [{"name": "scratch", "scratch": "10Gi", "mount": "/s"}],
    },
    "images": [
        {"name": "cpu", "reference": "example/nb:cpu", "cuda": None},
        {
            "name": "cu12",
            "reference": "example/nb:cu12",
            "cuda": "12.6",
            "flavor": "pytorch",
            "frameworks": [{"name": "torch", "version": "2.14", "cuda": "12.6"}],
            "architectures": ["sm_70", "sm_80", "sm_90"],
        },
    ],
    "profiles": [
        {"slug": "cpu", "display_name": "CPU", "images": ["cpu"]},
        {"slug": "one", "display_name": "1 GPU", "gpu": {"count": 1}, "images": ["cu12"]},
        {"slug": "mig", "display_name": "MIG", "gpu": {"mig": "1g.10gb"}, "images": ["cu12"]},
    ],
}


def mutate(path: str, value: Any = ..., *, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of BASE with the field at ``path`` (``a.b[2].c``) set, or deleted (no value)."""
    doc = copy.deepcopy(data if data is not None else BASE)
    parts = [p for p in re.split(r"\.|\[(\d+)\]", path) if p]
    target: Any = doc
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
    last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return doc


def test_the_shipped_catalog_loads_audits_clean_and_offers_something() -> None:
    """Only that: what it offers is the admins' to edit, and no other test depends on it."""
    catalog = default_catalog()
    VALIDATOR.validate(yaml.safe_load(default_catalog_text()))
    as_of = datetime.date.fromisoformat(tables.load("cuda_containers").as_of)
    assert not [s for s in audit.audit(catalog, as_of) if s.failed]
    cluster = ClusterState.from_objects([k.node("cpu-1"), k.gpu_node("h100-1", k.H100)], [])
    offers = compute_offers(catalog, cluster.snapshot())
    available = {o.slug for o in offers if o.available}
    assert catalog.default_profile.slug in available
    assert any(catalog.profile(slug).gpu.wants_gpu for slug in available)


def test_defaults_apply_to_profiles_that_do_not_override_them() -> None:
    catalog = parse_catalog(mutate("profiles[1].memory", "8Gi"))
    one = catalog.profile("one")
    assert one.volumes[0].scratch == 10 * 1024**3
    assert one.memory.guarantee == 8 * 1024**3
    assert catalog.profile("cpu").memory.guarantee == 4 * 1024**3


def test_the_base_of_these_tests_is_valid() -> None:
    VALIDATOR.validate(BASE)
    catalog = parse_catalog(BASE, "t.yaml")
    cu12 = catalog.image("cu12")
    assert cu12.required_cuda == "12.6"
    assert cu12.architectures[0] == Architecture("sm", 7, 0)
    assert catalog.profile("one").default_image == "cu12"
    assert catalog.default_profile.slug == "cpu"  # the first, when none is marked


def test_a_framework_with_a_newer_cuda_raises_what_the_image_needs() -> None:
    doc = mutate("images[1].frameworks[0].cuda", "13.0")
    assert parse_catalog(doc).image("cu12").required_cuda == "13.0"
    doc = mutate("images[1].cuda", 12.9)  # an unquoted YAML number is accepted
    assert parse_catalog(doc).image("cu12").cuda == "12.9"


@pytest.mark.parametrize(
    ("memory", "size"), [("1k", 1000), ("1e9", 10**9), ("1.5Gi", 3 * 2**29), ("+2G", 2 * 10**9)]
)
def test_memory_is_any_kubernetes_quantity_of_whole_bytes(memory: str, size: int) -> None:
    doc = mutate("profiles[1].memory", memory)
    VALIDATOR.validate(doc)
    assert parse_catalog(doc).profile("one").memory.guarantee == size


# (mutation path, value or ... to delete, the field the error names, words the error contains)
BAD: list[tuple[str, Any, str, str]] = [
    ("version", 2, "version", "must be 1"),
    ("colour", "blue", "colour", "not a known field"),
    ("images", [], "images", "at least one"),
    ("profiles", ..., "profiles", "needs at least one entry"),
    ("images[0].name", "CPU Image", "images[0].name", "lower-case letters"),
    ("images[0].reference", ..., "images[0]", "needs the field 'reference'"),
    ("images[0].reference", "a b", "images[0].reference", "without spaces"),
    ("images[1].name", "cpu", "images[1].name", "used by another image"),
    ("images[1].cuda", "twelve", "images[1].cuda", "CUDA version"),
    ("images[1].architectures[1]", "ampere", "images[1].architectures[1]", "sm_90"),
    ("images[0].architectures", ["sm_80"], "images[0].architectures", "with a CUDA version"),
    ("images[1].frameworks[0].version", 2.1, "images[1].frameworks[0].version", "quoted"),
    ("images[1].frameworks[0].gpu", 1, "images[1].frameworks[0].gpu", "not a known field"),
    ("profiles[1].gpu.count", "two", "profiles[1].gpu.count", "integer from 1 to 64"),
    ("profiles[1].gpu.count", 0, "profiles[1].gpu.count", "integer from 1 to 64"),
    ("profiles[1].gpu.count", True, "profiles[1].gpu.count", "integer"),
    ("profiles[1].gpu.max_count", 0, "profiles[1].gpu.max_count", "from 1 to 64"),
    ("profiles[1].gpu.mig", "1g.10gb", "profiles[1].gpu", "exactly one of count"),
    ("profiles[1].gpu", {}, "profiles[1].gpu", "exactly one of count"),
    ("profiles[2].gpu.mig", "huge", "profiles[2].gpu.mig", "not a MIG profile"),
    ("profiles[2].gpu.max_count", 2, "profiles[2].gpu.max_count", "only whole-GPU"),
    ("profiles[1].gpu.families", ["volta", "fermi"], "profiles[1].gpu.families[1]", "ampere"),
    ("profiles[1].gpu.min_memory", "lots", "profiles[1].gpu.min_memory", "16Gi"),
    ("profiles[1].gpu.models", "A100", "profiles[1].gpu.models", "must be a list"),
    ("profiles[1].slug", "One GPU", "profiles[1].slug", "lower-case"),
    ("profiles[1].slug", "cpu", "profiles[1].slug", "used by another profile"),
    ("profiles[1].display_name", ..., "profiles[1]", "needs the field 'display_name'"),
    ("profiles[1].images", ["cu12", "cu13"], "profiles[1].images[1]", "no image is named 'cu13'"),
    ("profiles[1].images", ["cu12", "cu12"], "profiles[1].images[1]", "listed twice"),
    ("profiles[1].images", [], "profiles[1].images", "at least one entry"),
    ("profiles[1].default_image", "cpu", "profiles[1].default_image", "not one of"),
    ("profiles[1].cpu", "-1", "profiles[1].cpu", "cores"),
    ("profiles[1].cpu", {"guarantee": 4, "limit": 2}, "profiles[1].cpu.guarantee", "limit"),
    ("profiles[1].memory", {"limit": "big"}, "profiles[1].memory.limit", "16Gi"),
    ("profiles[1].memory", "40GiB", "profiles[1].memory", "(write 40Gi)"),
    ("profiles[1].memory", "16 Gi", "profiles[1].memory", "has spaces"),
    ("profiles[1].memory", "-1Gi", "profiles[1].memory", "not negative"),
    ("profiles[1].cpu", "2 cores", "profiles[1].cpu", "has spaces"),
    ("profiles[1].default", "yes please", "profiles[1].default", "true or false"),
    ("profiles[1].volumes", [{"name": "x", "mount": "/x"}], "profiles[1].volumes[0]", "claim"),
    (
        "profiles[1].volumes",
        [{"name": "x", "mount": "/dev/shm", "scratch": "1Gi"}],
        "profiles[1].volumes[0].mount",
        "set shm",
    ),
    (
        "profiles[1].volumes",
        [{"name": "a", "mount": "/a", "claim": "c"}, {"name": "a", "mount": "/b", "claim": "d"}],
        "profiles[1].volumes[1].name",
        "used by another volume",
    ),
    ("defaults.volumes[0].scratch", "big", "defaults.volumes[0].scratch", "16Gi"),
    ("defaults.gpu", {"count": 1}, "defaults.gpu", "not a known field"),
    (
        "profiles[1].tolerations",
        [{"key": "k", "effect": "Never"}],
        "profiles[1].tolerations[0].effect",
        "NoSchedule",
    ),
    (
        "profiles[1].tolerations",
        [{"key": "k", "operator": "Exists", "value": "v"}],
        "profiles[1].tolerations[0].value",
        "left out",
    ),
]


@pytest.mark.parametrize(("path", "value", "field", "words"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_field_is_named_with_what_is_allowed(
    path: str, value: Any, field: str, words: str
) -> None:
    doc = mutate(path, value)
    text = yaml.safe_dump(doc, sort_keys=False)
    with pytest.raises(CatalogError) as caught:
        parse_catalog_text(text, "cat.yaml")
    err = caught.value
    assert err.path == field
    assert words in str(err)
    if path == "profiles":  # a missing key has no line
        assert err.line is None
        assert str(err).startswith("cat.yaml: profiles: ")
    else:
        assert err.line is not None
        assert 1 <= err.line <= len(text.splitlines())
        assert str(err).startswith(f"cat.yaml:{err.line}: {field}: ")


def test_the_validator_with_its_defs_in_place_says_what_the_schema_as_written_says() -> None:
    """The loader's validator has the schema's $defs written in place (faster): same errors."""
    as_written = jsonschema.Draft202012Validator(schema(), format_checker=validation.formats())
    fast = validation._validator()
    assert "$ref" not in json.dumps(fast.schema["properties"])

    def said(validator: Any, doc: Any) -> list[tuple[str, str]]:
        return sorted(validation._explain(e, validator.schema) for e in validator.iter_errors(doc))

    for path, value, _, _ in BAD:
        doc = mutate(path, value)
        assert said(fast, doc) == said(as_written, doc), path
    assert said(fast, BASE) == []


def test_a_recursive_ref_and_one_beside_a_rule_of_its_own_stay() -> None:
    root: dict[str, Any] = {
        "$defs": {
            "tree": {"type": "object", "properties": {"kids": {"items": {"$ref": "#/$defs/tree"}}}},
            "count": {"type": "integer", "minimum": 1},
        },
        "properties": {
            "tree": {"$ref": "#/$defs/tree"},
            "five_up": {"$ref": "#/$defs/count", "minimum": 5},
            "described": {"$ref": "#/$defs/count", "description": "a count"},
        },
    }
    out = validation._inline(root, root)["properties"]
    assert out["tree"]["properties"]["kids"]["items"] == {"$ref": "#/$defs/tree"}
    assert out["five_up"] == {"$ref": "#/$defs/count", "minimum": 5}
    assert out["described"] == {"type": "integer", "minimum": 1, "description": "a count"}


def test_two_default_profiles_are_refused() -> None:
    doc = mutate("profiles[0].default", True)
    doc = mutate("profiles[2].default", True, data=doc)
    with pytest.raises(CatalogError, match=r"profiles\[2\]\.default: only one profile"):
        parse_catalog(doc)


def test_the_line_points_at_the_bad_field() -> None:
    text = default_catalog_text().replace("gpu: {count: 1}", "gpu: {count: many}")
    with pytest.raises(CatalogError) as caught:
        parse_catalog_text(text, "mine.yaml")
    line = text.splitlines()[caught.value.line - 1]  # type: ignore[operator]
    assert "count: many" in line
    assert caught.value.path == "profiles[1].gpu.count"


def test_malformed_yaml_and_duplicate_keys(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"^x.yaml:3: not valid YAML"):
        parse_catalog_text("images:\n  - name: a\n  reference: [\n", "x.yaml")
    with pytest.raises(CatalogError, match=r"^x.yaml:2: images: is given twice"):
        parse_catalog_text("images: []\nimages: []\n", "x.yaml")
    with pytest.raises(CatalogError, match="empty"):
        parse_catalog_text("", "x.yaml")
    with pytest.raises(CatalogError, match="must be a mapping"):
        parse_catalog_text("- 1\n- 2\n", "x.yaml")


def test_load_catalog_reads_a_file_and_names_an_unreadable_one(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(default_catalog_text())
    assert load_catalog(path).profiles == default_catalog().profiles
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path / "missing.yaml")
    missing = tmp_path / "missing.yaml"
    assert str(caught.value) == f"{missing}: cannot read the catalog: No such file or directory"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("16Gi", 16 * 1024**3),
        ("512Mi", 512 * 1024**2),
        ("2G", 2 * 10**9),
        ("1k", 1000),  # Kubernetes' decimal kilo (once refused here)
        ("0.5Ki", 512),
        ("1e3", 1000),
        (1000, 1000),
    ],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("lots", "'lots' is not a Kubernetes quantity"),
        ("40GiB", "40GiB is not a Kubernetes quantity (write 40Gi)"),  # once accepted here
        ("1.5.2Gi", "not a Kubernetes quantity"),
        ("-1Gi", "not negative"),
        (-1, "not negative"),
        (
            "512m",
            "512m is 0.512 bytes, not a whole number (m is a thousandth: did you mean 512Mi?)",
        ),
        ("1.5", "1.5 is 1.5 bytes, not a whole number"),
        (True, "must be a size like 16Gi or 512Mi"),
        (1.5, "must be a size like 16Gi or 512Mi"),
    ],
)
def test_what_is_no_size(value: object, words: str) -> None:
    with pytest.raises(ValueError, match="must be a size like 16Gi or 512Mi") as caught:
        parse_size(value)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("value", "cores"), [("500m", 0.5), (2, 2.0), ("2", 2.0), ("1.5", 1.5), (0.25, 0.25)]
)
def test_cpu(value: object, cores: float) -> None:
    assert parse_cpu(value) == cores


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0", "more than 0 cores"),
        (0, "more than 0 cores"),
        ("-1", "more than 0 cores"),
        ("fast", "'fast' is not a Kubernetes quantity"),
        ("2 cores", "has spaces"),
        (True, "must be a number of cores"),
        (float("nan"), "must be a number of cores"),
    ],
)
def test_what_is_no_cpu(value: object, words: str) -> None:
    with pytest.raises(ValueError, match="cores") as caught:
        parse_cpu(value)
    assert words in str(caught.value)


def test_sizes_are_formatted_with_binary_suffixes() -> None:
    assert format_size(16 * 1024**3) == "16Gi"
    assert format_size(1536 * 1024**2) == "1536Mi"
    assert format_size(1536 * 1024**2 + 1) == "1.5Gi"
    assert format_size(None) == "-"


def test_architectures_parse() -> None:
    assert Architecture.parse("sm_100a") == Architecture("sm", 10, 0, "a")
    assert Architecture.parse("compute_120") == Architecture("compute", 12, 0)
    assert str(Architecture.parse("sm_86")) == "sm_86"
    with pytest.raises(ValueError, match="not an architecture"):
        Architecture.parse("ampere")


@pytest.mark.parametrize(
    ("arch", "compute", "ptx_jit", "runs"),
    [
        ("sm_80", (8, 0), True, True),
        ("sm_80", (8, 6), True, True),  # SASS runs on later minors of its major
        ("sm_80", (9, 0), True, False),  # ... but not on a newer major
        ("sm_86", (8, 0), True, False),
        ("sm_90a", (9, 0), True, True),
        ("sm_100a", (10, 3), True, False),  # architecture-specific: this GPU only
        ("compute_90", (12, 0), True, True),  # PTX is JIT-compiled for newer GPUs
        ("compute_90", (12, 0), False, False),  # ... unless the driver cannot JIT it (MVC)
        ("compute_90", (8, 6), True, False),
    ],
)
def test_binary_compatibility(
    arch: str, compute: tuple[int, int], ptx_jit: bool, runs: bool
) -> None:
    assert Architecture.parse(arch).runs_on(compute, ptx_jit=ptx_jit) is runs


def test_model_patterns() -> None:
    assert matches_model("NVIDIA-A100-SXM4-80GB", ("a100",))
    assert matches_model("NVIDIA-H100-80GB-HBM3", ("*H100*",))
    assert not matches_model("NVIDIA-A100-SXM4-40GB", ("*80GB",))
    assert matches_model("Tesla-V100-SXM2-32GB", ("A100", "V100"))
    assert not matches_model("Tesla-T4", ("A100",))


def test_the_documented_catalog_and_its_errors() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "catalog.md").read_text()
    catalog_yaml = re.search(r"```yaml\n(.*?)```", doc, re.S)
    errors = re.search(r"```text\n(.*?)```", doc, re.S)
    assert catalog_yaml
    assert errors
    block = catalog_yaml.group(1)
    assert [p.slug for p in parse_catalog_text(block).profiles] == ["cpu", "a100", "mig", "shared"]
    edits = [
        ("count: 1\n      max_count: 4", "count: two\n      max_count: 4"),
        (
            "images: [cuda13-pytorch, cuda12-pytorch]\n  - slug: mig",
            "images: [cuda13-pytorch, cuda11]\n  - slug: mig",
        ),
        ("architectures: [sm_50", "architectures: [ampere"),
        ("gpu: {mig: 1g.10gb}", "gpu: {mig: 1g.10gb, shared: true}"),
    ]
    produced = []
    for old, new in edits:
        assert old in block
        with pytest.raises(CatalogError) as caught:
            parse_catalog_text(block.replace(old, new), "catalog.yaml")
        produced.append(str(caught.value))
    assert produced == errors.group(1).splitlines()
