"""The per-tick reader the adapter compiles from the field table: what it writes in place must
give what the general code gives (PCIe rates, memory, the history entry, the document's keys)."""

from __future__ import annotations

import random
from typing import Any

import pynvml  # noqa: TID251 - tests use the real binding's constants
import pytest

from gpu_devbox.gpus import NvmlAdapter, Sampler, SamplerConfig, VisibleDevices, fields, reading
from gpu_devbox.gpus.nvml import _FI_PCIE_RX_BYTES, _FI_PCIE_TX_BYTES, _counter_rate
from gpu_devbox.gpus.payload import history_entry
from gpu_devbox.gpus.simulated import _Handle, _Struct
from tests.fakenvml import FakeNVML, h100

#: The PCIe counters' field IDs the adapter asks for (nvml.h's: older bindings lack the names).
TX, RX = _FI_PCIE_TX_BYTES, _FI_PCIE_RX_BYTES


def _field(fid: int, ts: int, value: int | float, value_type: int, ret: int) -> _Struct:
    member = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal"}[value_type]
    return _Struct(
        {
            "fieldId": fid,
            "timestamp": ts,
            "valueType": value_type,
            "nvmlReturn": ret,
            "value": _Struct({member: value}),
        }
    )


class ScriptedCounters(FakeNVML):
    """The fake H100 whose PCIe counters answer a given script, one pair per call."""

    def __init__(self, script: list[tuple[_Struct, _Struct]]) -> None:
        super().__init__([h100()])
        self.script = list(script)

    def nvmlDeviceGetFieldValues(self, handle: _Handle, field_ids: list[int]) -> list[_Struct]:
        self._check("nvmlDeviceGetFieldValues", handle)
        assert field_ids == [TX, RX]
        return list(self.script.pop(0))


def _script(seed: int, steps: int) -> list[tuple[_Struct, _Struct]]:
    """Counter pairs as drivers give them: mostly the H100's 32-bit type, rising and wrapping,
    with failed readings, repeated and backward timestamps and now and then another type."""
    rng = random.Random(seed)
    values = [rng.randrange(2**32), rng.randrange(2**32)]
    ts = rng.randrange(10**9)
    out = []
    for _ in range(steps):
        ts += rng.choice([0, -5, 1, 999, 1_000_000, rng.randrange(1, 5_000_000)])
        pair = []
        for i, fid in enumerate((TX, RX)):
            value_type = rng.choice([1] * 8 + [3, 0])
            width = {0: 0, 1: 32, 3: 64}[value_type]
            values[i] += rng.randrange(0, 2**33)
            value: int | float = values[i] % (1 << width) if width else float(values[i])
            ret = pynvml.NVML_ERROR_NOT_SUPPORTED if rng.random() < 0.05 else 0
            pair.append(_field(fid, ts, value, value_type, ret))
        out.append((pair[0], pair[1]))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_rates_in_place_are_those_of_the_general_counter_code(seed: int) -> None:
    script = _script(seed, 200)
    fake = ScriptedCounters(script)
    adapter = NvmlAdapter(lambda: fake)
    _, (device,) = adapter.open()
    last: list[int | None] = [None, None, None, None]
    rates = []
    expected = []
    for tx, rx in script:
        expected.append({"tx": _counter_rate(last, 0, tx), "rx": _counter_rate(last, 2, rx)})
        rates.append(adapter.sample(device, slow=False)["pcie"])
    assert rates == expected
    assert sum(r["tx"] is not None for r in rates) > 50  # the script measured something


def test_a_rate_is_whole_bytes_per_second_rounded_to_the_nearest() -> None:
    last: list[int | None] = [None, None, None, None]
    _counter_rate(last, 0, _field(TX, 0, 0, 1, 0))
    assert _counter_rate(last, 0, _field(TX, 3, 2, 1, 0)) == 666_667  # 666,666.67 B/s
    assert _counter_rate(last, 0, _field(TX, 6, 3, 1, 0)) == 333_333  # 333,333.33 B/s


def _documents(adapter: NvmlAdapter, device: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out = []
    for slow in (True, False, False, True):
        document, entry, _ = adapter.read(device, slow=slow)
        out.append((document, entry))
    return out


@pytest.mark.parametrize(
    "unsupported",
    [frozenset(), frozenset({"power", "pcie", "clocks", "temperature", "utilization"})],
)
def test_the_history_entry_holds_the_documents_charted_fields(
    unsupported: frozenset[str],
) -> None:
    fake = FakeNVML([h100(unsupported=unsupported)], state="loaded")
    adapter = NvmlAdapter(lambda: fake)
    _, (device,) = adapter.open()
    for document, entry in _documents(adapter, device):
        assert entry == history_entry(document)
        assert list(entry) == ["index", "uuid", *dict(fields.CHARTED)]


def test_a_document_starts_from_its_template_and_keeps_its_key_order() -> None:
    fake = FakeNVML([h100()], state="loaded")
    adapter = NvmlAdapter(lambda: fake)
    _, (device,) = adapter.open()
    tail = {"energy": {"total": 1.5}, "ecc": None, "processes": [], "mig": None, "reason": None}
    template = reading.template(device.identity, tail)
    document, _, _ = adapter.read(device, slow=False, template=template)
    assert list(document) == list(template)
    assert document["energy"] is tail["energy"]
    assert document["index"] == device.index
    # The template is copied, never written to.
    assert template["memory"] is None
    assert template == reading.template(device.identity, tail)


def test_every_document_has_the_keys_of_the_schema_in_order_across_readings() -> None:
    fake = FakeNVML(state="loaded")
    sampler = Sampler(
        NvmlAdapter(lambda: fake),
        visible=VisibleDevices.from_env({}),
        config=SamplerConfig(interval=1.0, slow_interval=3.0),
        clock=iter(range(100)).__next__,
    )
    orders = set()
    for step in range(7):
        if step == 4:  # memory use changes between slow readings: processes are read again
            fake.state = "idle"
        for gpu in sampler.tick().gpus:
            orders.add(tuple(gpu))
    identity = ("index", "uuid", "name", "serial", "pci_bus_id", "compute_capability")
    expected = (*identity, "minor_number", *dict(fields.GROUPS), "processes", "mig", "reason")
    assert orders == {expected}


def test_memory_v2_failing_after_open_is_learnt_and_asked_no_more() -> None:
    fake = FakeNVML()
    adapter = NvmlAdapter(lambda: fake)
    _, devices = adapter.open()
    assert adapter.sample(devices[0], slow=False)["memory"]["reserved"] == 503_316_480
    fake.missing.add("nvmlDeviceGetMemoryInfo_v2")  # e.g. the driver was downgraded under us
    memory = adapter.sample(devices[0], slow=False)["memory"]
    assert memory["reserved"] is None  # v1 cannot tell reserved memory apart
    before = fake.calls["nvmlDeviceGetMemoryInfo_v2"]
    for _ in range(3):
        adapter.sample(devices[0], slow=False)
    assert fake.calls["nvmlDeviceGetMemoryInfo_v2"] == before


def test_the_per_tick_reader_is_written_from_the_table() -> None:
    fake = FakeNVML()
    adapter = NvmlAdapter(lambda: fake)
    adapter.open()
    code = reading.source(fields.Cadence.FAST, adapter._sources(fields.Cadence.FAST))
    assert code.startswith("def read(device, template):")
    assert "document = template.copy()" in code
    assert "counter.value.uiVal" in code  # the PCIe rates, in place
    assert "memory_info(handle, version=memory_version)" in code
    for group, _ in reading.groups_of(fields.Cadence.FAST):
        assert f"document[{group!r}] = " in code


def test_a_charted_field_must_be_read_on_every_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    slow = next(f for f in fields.FIELDS if f.cadence is fields.Cadence.SLOW)
    monkeypatch.setattr(fields, "CHARTED", ((slow.group, (slow.key,)),))
    asks = dict.fromkeys(reading.calls(fields.Cadence.FAST), print)
    with pytest.raises(ValueError, match="charted fields must be read on every tick"):
        reading.source(fields.Cadence.FAST, asks)


class BindingStructures(FakeNVML):
    """The fake H100 answering with the binding's own ctypes structures, as pynvml does."""

    def __init__(self) -> None:
        super().__init__([h100()])
        self.stamp = 1_000_000
        self.counters = [2**32 - 1_500, 100]  # the first reading at 2**32 - 500

    def nvmlDeviceGetFieldValues(self, handle: _Handle, field_ids: list[int]) -> Any:
        self._check("nvmlDeviceGetFieldValues", handle)
        values = (pynvml.c_nvmlFieldValue_t * len(field_ids))()
        self.stamp += 500_000  # half a second
        self.counters = [(self.counters[0] + 1_000) % 2**32, self.counters[1] + 3_000]
        for value, fid, counter in zip(values, field_ids, self.counters, strict=True):
            value.fieldId = fid
            value.timestamp = self.stamp
            value.valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
            value.value.uiVal = counter
        return values

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: int | None = None) -> Any:
        self._check("nvmlDeviceGetMemoryInfo", handle)
        memory = pynvml.c_nvmlMemory_v2_t()
        memory.total, memory.reserved, memory.used = 80 << 30, 480 << 20, 1 << 30
        memory.free = memory.total - memory.reserved - memory.used
        return memory


def test_the_reader_takes_the_bindings_ctypes_structures_as_they_are() -> None:
    fake = BindingStructures()
    adapter = NvmlAdapter(lambda: fake)
    _, (device,) = adapter.open()
    adapter.sample(device, slow=False)
    document = adapter.sample(device, slow=False)
    # TX wrapped around 2**32 and moved 1,000 bytes, RX 3,000, in half a second.
    assert document["pcie"] == {"tx": 2_000, "rx": 6_000}
    assert document["memory"] == {
        "total": 80 << 30,
        "used": 1 << 30,
        "reserved": 480 << 20,
        "free": (80 << 30) - (480 << 20) - (1 << 30),
    }
    assert all(type(v) is int for v in document["memory"].values())  # JSON integers
