"""The GPU field table is the one description of every measured value, and everything follows it.

Adding a row here must be enough for the adapter to read the value, the documents and history to
carry it, the simulated backend to answer it, Prometheus to export it and the OpenAPI document
to describe it (see test_openapi_generated.py for the document).
"""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client import CollectorRegistry

from gpu_devbox.gpus import fields
from gpu_devbox.gpus.nvml import NvmlAdapter
from gpu_devbox.gpus.sampler import Sampler, SamplerConfig
from gpu_devbox.gpus.simulated import FIELD_FUNCTIONS, SimulatedGPU, SimulatedNVML, build_gpus
from gpu_devbox.gpus.visible import VisibleDevices
from gpu_devbox.server.prometheus import GpuCollector
from tests.fakenvml import FakeNVML, h100


def open_sampler(lib: object) -> Sampler:
    sampler = Sampler(
        NvmlAdapter(lambda: lib),
        visible=VisibleDevices.from_env({}),
        config=SamplerConfig(interval=1.0, slow_interval=1.0),
    )
    sampler.tick()
    return sampler


def every_call_answered() -> list[SimulatedGPU]:
    return [h100(unsupported=frozenset()), h100(unsupported=frozenset())]


def test_every_gpu_document_has_exactly_the_tables_fields() -> None:
    sampler = open_sampler(FakeNVML())
    for gpu in sampler.snapshot().gpus:
        for group, keys in fields.GROUPS:
            assert list(gpu[group]) == list(keys), group
        assert [k for k in gpu if k in dict(fields.GROUPS)] == [g for g, _ in fields.GROUPS]


def test_a_history_entry_keeps_exactly_the_charted_fields() -> None:
    sampler = open_sampler(FakeNVML())
    [gpu, *_] = sampler.snapshot().gpus
    [entry, *_] = json.loads(sampler.history()[-1])["gpus"]
    charted: dict[str, list[str]] = {}
    for f in fields.FIELDS:
        if f.charted:
            charted.setdefault(f.group, []).append(f.key)
    assert entry == {
        "index": gpu["index"],
        "uuid": gpu["uuid"],
        **{group: {key: gpu[group][key] for key in keys} for group, keys in charted.items()},
    }


@pytest.mark.parametrize("field", fields.FIELDS, ids=lambda f: f.path)
def test_each_field_is_read_from_its_nvml_call(field: fields.GpuField) -> None:
    # The captured H100 answers every call of the table: each value is read (not null), and a
    # GPU whose driver refuses the call's entry points reports null instead.
    # (GPUs that answer every call: the captured H100 has, for one, no fan of its own.)
    sampler = open_sampler(FakeNVML(every_call_answered(), state="loaded"))
    sampler.tick()
    [gpu, *_] = sampler.snapshot().gpus
    if field.path not in ("pcie.tx", "pcie.rx"):  # rates need two readings
        assert gpu[field.group][field.key] is not None
    fake = FakeNVML(every_call_answered())
    fake.missing.update(field.nvml.functions)
    [gpu, *_] = open_sampler(fake).snapshot().gpus
    assert gpu[field.group][field.key] is None


def test_a_group_is_read_at_one_cadence() -> None:
    # The sampler caches the slow groups between readings: a group split across cadences would
    # show stale values for its fast part.
    for group, _ in fields.GROUPS:
        cadences = {f.cadence for f in fields.FIELDS if f.group == group}
        assert len(cadences - {fields.Cadence.STATIC}) == 1, group


def test_dedicated_readers_answer_in_payload_units() -> None:
    for f in fields.FIELDS:
        if f.nvml.reader is not None:
            assert f.nvml.per == 1, f.path
            assert f.nvml.reader in ("memory", "pcie"), f.path


def test_prometheus_and_dcgm_names_are_unique_and_valid() -> None:
    names = [f.prometheus.name for f in fields.FIELDS if f.prometheus]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z_]+", n) for n in names)
    dcgm = [f.dcgm.name for f in fields.FIELDS if f.dcgm]
    assert len(dcgm) == len(set(dcgm))
    assert all(n.startswith("DCGM_FI_DEV_") for n in dcgm)


def test_the_collector_exports_every_named_field_scaled() -> None:
    sampler = open_sampler(FakeNVML(every_call_answered(), state="loaded"))
    sampler.tick()
    registry = CollectorRegistry()
    registry.register(GpuCollector(sampler, dcgm_names=True, hostname=lambda: "node"))
    [gpu, *_] = sampler.snapshot().gpus
    for f in fields.FIELDS:
        value = gpu[f.group][f.key]
        labels = {"gpu": "0", "uuid": gpu["uuid"], "model": gpu["name"]}
        if f.prometheus is not None:
            suffix = "_total" if f.prometheus.counter else ""
            name = f"gpu_devbox_{f.prometheus.name}{suffix}"
            got = registry.get_sample_value(name, labels)
            assert got == pytest.approx(value * f.prometheus.scale), name
        if f.dcgm is not None:
            dcgm_labels = {
                "gpu": "0",
                "UUID": gpu["uuid"],
                "device": "nvidia0",
                "modelName": gpu["name"],
                "Hostname": "node",
            }
            got = registry.get_sample_value(f.dcgm.name, dcgm_labels)
            assert got == pytest.approx(value * f.dcgm.scale), f.dcgm.name


def test_simulated_gpus_answer_every_call_of_the_table() -> None:
    lib = SimulatedNVML(build_gpus(1))
    for f in fields.FIELDS:
        assert any(hasattr(lib, name) for name in f.nvml.functions), f.path
    [gpu] = open_sampler(lib).snapshot().gpus
    for f in fields.FIELDS:
        if f.path not in ("pcie.tx", "pcie.rx"):
            assert gpu[f.group][f.key] is not None, f.path


@pytest.mark.parametrize(
    "field", [f for f in fields.FIELDS if f.unsupported_as], ids=lambda f: f.path
)
def test_each_field_can_be_simulated_unsupported(field: fields.GpuField) -> None:
    assert field.unsupported_as is not None
    assert set(field.nvml.functions) <= set(FIELD_FUNCTIONS[field.unsupported_as])
    lib = SimulatedNVML(build_gpus(1, unsupported=[field.unsupported_as]))
    [gpu] = open_sampler(lib).snapshot().gpus
    assert gpu[field.group][field.key] is None


def test_simulated_curves_follow_the_load() -> None:
    for f in fields.FIELDS:
        if f.simulate is not None:
            assert f.simulate(0.0) <= f.simulate(1.0), f.path


def test_a_lost_gpu_keeps_the_values_read_at_open() -> None:
    fake = FakeNVML()
    sampler = open_sampler(fake)
    fake.lost.add(1)
    sampler.tick()
    lost = sampler.snapshot().gpus[1]
    assert lost["reason"]["code"] == "gpu_lost"
    for f in fields.FIELDS:
        kept = f.cadence is fields.Cadence.STATIC or f.path == "memory.total"
        assert (lost[f.group][f.key] is not None) is kept, f.path
