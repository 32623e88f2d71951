"""One GPU sampler per server: a background thread, a shared snapshot and a bounded history.

The sampler is the only caller of the NVML adapter. Every reader (REST handlers, the push
stream, the Prometheus collector, the CLI) reads the latest immutable :class:`Snapshot`, so the
cost of NVML is paid once per tick however many clients are connected, and never on the
tornado event loop.

Cadence: cheap fields every ``interval`` seconds; costly ones (energy, ECC, processes, MIG)
every ``slow_interval`` seconds. When NVML fails (no driver, GPU lost, ...) the reason is
recorded, the snapshot becomes empty and the sampler retries with exponential backoff.

Faults of one GPU stay with that GPU: while at least one GPU answers, a GPU that NVML cannot read
(lost, or failing) is published with ``null`` values and its ``reason``, and is tried again at
the slow cadence; the others carry on. Only when every GPU fails is NVML itself deemed unusable.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import functools
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from gpu_devbox.gpus.errors import NvmlUnavailable, Reason, ReasonCode, reason_for
from gpu_devbox.gpus.nvml import Device, NvmlAdapter, SystemInfo
from gpu_devbox.gpus.payload import history_entry, sampled_tail, unreadable_gpu
from gpu_devbox.gpus.reading import template
from gpu_devbox.gpus.visible import DeviceIdentity, Selection, VisibleDevices

log = logging.getLogger("gpu_devbox.sampler")


#: The documents are serialised with orjson: about ten times faster than the standard
#: library's C encoder on a snapshot (5 µs instead of 55 µs for 8 GPUs), which made serialising
#: most of what a tick cost over the NVML calls themselves. Its output is compact UTF-8 JSON;
#: a float that is not finite becomes ``null`` (the standard library would write ``NaN``, which
#: is not JSON). What orjson declines (a non-string key, a numpy scalar, an integer past 64
#: bits: none of which the sampler makes) goes to the standard library's encoder, which
#: rejects what is not JSON (NaN, infinities) instead of writing it.
_stdlib_dumps = json.JSONEncoder(
    separators=(",", ":"), allow_nan=False, check_circular=False
).encode


def _dumps(document: Any) -> bytes:
    try:
        return orjson.dumps(document)
    except TypeError:  # orjson.JSONEncodeError
        return _stdlib_dumps(document).encode()


#: How many snapshots and history entries were serialised, by the name of the thread that did
#: it. The sampler serialises in its own thread, so the event loop's thread stays at 0 however
#: many clients read (the stream benchmark and the tests check that).
ENCODES: collections.Counter[str] = collections.Counter()

#: Snapshot fields that are not part of the published document.
_UNPUBLISHED = frozenset({"status_version"})


def _encode(document: Any) -> bytes:
    ENCODES[threading.current_thread().name] += 1
    return _dumps(document)


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """How often to sample and how much to keep."""

    interval: float = 1.0
    slow_interval: float = 5.0
    history_seconds: float = 600.0
    initial_backoff: float = 1.0
    max_backoff: float = 60.0

    def __post_init__(self) -> None:
        for name in ("interval", "slow_interval", "history_seconds", "max_backoff"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if self.slow_interval < self.interval:
            raise ValueError("slow_interval must not be shorter than interval")

    @property
    def history_length(self) -> int:
        """How many samples the history holds."""
        return max(1, math.ceil(self.history_seconds / self.interval))


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What the sampler last saw. Immutable; shared by every reader.

    The sampler serialises each snapshot once, in its own thread, when it makes it
    (:meth:`encode`): readers on the event loop only write the bytes.
    """

    timestamp: float
    simulated: bool
    gpus: tuple[dict[str, Any], ...]
    #: Bumped whenever :meth:`Sampler.status` changes, so the stream can push it.
    status_version: int

    def document(self) -> dict[str, Any]:
        """The published document: every field of the snapshot but ``status_version``."""
        return {name: getattr(self, name) for name in _published_fields(type(self))}

    @functools.cached_property
    def body(self) -> bytes:
        """The document as compact JSON in UTF-8 (what ``GET gpus`` writes), serialised once."""
        return _encode(self.document())

    @functools.cached_property
    def json(self) -> str:
        """:attr:`body` as text."""
        return self.body.decode()

    @functools.cached_property
    def frame(self) -> bytes:
        """The stream's ``{"type":"gpus","data":...}`` message, as UTF-8 bytes."""
        return b'{"type":"gpus","data":' + self.body + b"}"

    def encode(self) -> Snapshot:
        """Serialise now (the sampler does, in its thread) and return this snapshot."""
        if "frame" not in self.__dict__:
            # What the cached properties would compute, stored where they look first: the
            # properties' own first call takes a lock and costs a microsecond or two each.
            body = _encode(self.document())
            self.__dict__["body"] = body
            self.__dict__["frame"] = b'{"type":"gpus","data":' + body + b"}"
        return self


_PUBLISHED: dict[type[Snapshot], tuple[str, ...]] = {}


def _published_fields(cls: type[Snapshot]) -> tuple[str, ...]:
    """The names of the published fields of ``cls`` (a :class:`Snapshot`), looked up once."""
    names = _PUBLISHED.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name not in _UNPUBLISHED)
        _PUBLISHED[cls] = names
    return names


class Sampler:
    """Samples GPUs in a background thread and serves the results to any thread.

    Args:
        adapter: the NVML adapter this sampler owns.
        simulated: whether the adapter runs on the simulated backend (shown in every payload).
        visible: which GPUs this server may show.
        config: cadence and history size.
        version: gpu-devbox's version, reported by :meth:`status`.
        clock: wall clock for timestamps (seconds since the epoch).
        logger: where to log (the server passes its own); defaults to ``gpu_devbox.sampler``.
        annotate: called in the sampler thread on every sample's GPU documents before they are
            published; returns them completed (process attribution gives each process its
            owner). A failure is logged and the sample published as it was. The history entry
            is made by the reading, before: what annotating adds is not charted.
    """

    def __init__(
        self,
        adapter: NvmlAdapter,
        *,
        simulated: bool = False,
        visible: VisibleDevices | None = None,
        config: SamplerConfig | None = None,
        version: str = "",
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
        annotate: Callable[[tuple[dict[str, Any], ...]], tuple[dict[str, Any], ...]] | None = None,
    ) -> None:
        self.adapter = adapter
        self._annotate = annotate
        self.log = logger or log
        self.simulated = simulated
        self.visible = visible if visible is not None else VisibleDevices.from_env(os.environ)
        self.config = config or SamplerConfig()
        self.version = version
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[Snapshot], None]] = []
        self._history: collections.deque[tuple[float, bytes]] = collections.deque(
            maxlen=self.config.history_length
        )
        self._system: SystemInfo | None = None
        self._devices: list[Device] = []
        self._selection: list[Selection] = []
        #: Each visible GPU's device and the MIG instances it may show, in selection order.
        self._visible_devices: list[tuple[Device, frozenset[str] | None]] = []
        self._slow: dict[str, dict[str, Any]] = {}
        #: What each visible GPU's document starts from, by UUID: its static facts, the per-tick
        #: groups and the slow groups, processes, MIG and no reason of the last costly reading
        #: (:func:`~gpu_devbox.gpus.reading.template`); made again only when those were read.
        self._templates: dict[str, dict[str, Any]] = {}
        #: Why each GPU that cannot be read right now cannot, by NVML index.
        self._faults: dict[int, Reason] = {}
        self._last_slow = -math.inf
        self._reason: Reason | None = None
        self._backoff = self.config.initial_backoff
        self._retry_at = 0.0
        self._status_version = 0
        self._status: dict[str, Any] = {}
        self._snapshot = self._make_snapshot((), self._clock())
        self._update_status()

    # ------------------------------------------------------------------ thread control
    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="gpu-devbox-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and shut NVML down."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.adapter.close()

    def wait_ready(self, timeout: float) -> bool:
        """Block until the first tick has finished (successfully or not)."""
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        """Whether the first tick has finished."""
        return self._ready.is_set()

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                self.log.exception("gpu-devbox sampler tick failed; continuing")
            next_tick += self.config.interval
            delay = next_tick - time.monotonic()
            if delay < 0:  # a tick overran (e.g. a slow driver); do not try to catch up
                next_tick = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    # ------------------------------------------------------------------ sampling
    def tick(self) -> Snapshot:
        """Take one sample now (the thread calls this; tests and benchmarks may too)."""
        now = self._clock()
        opened = False
        if self.visible.nvidia == ():
            # NVIDIA_VISIBLE_DEVICES=void/none: started without GPUs on purpose (a CPU image or
            # profile). The variable cannot change while we run: no NVML, no retries.
            self._set_reason(
                reason_for(
                    ReasonCode.NO_VISIBLE_GPU,
                    detail=f"{self.visible.describe()}: this server was started without GPUs",
                )
            )
            snapshot = self._make_snapshot((), now)
            self._publish(snapshot)
            return snapshot
        try:
            if not self.adapter.is_open:
                if now < self._retry_at:
                    return self._snapshot
                self._open()
                opened = True
            slow = now - self._last_slow >= self.config.slow_interval - 1e-6
            documents, entries = self._sample_all(slow)
            gpus = tuple(documents)
            if slow:
                self._last_slow = now
            if not gpus and self._devices:
                reason = reason_for(ReasonCode.NO_VISIBLE_GPU, detail=self.visible.describe())
            elif not self._devices:
                reason = reason_for(ReasonCode.NO_VISIBLE_GPU, detail="NVML reports no GPU")
            else:
                reason = None
            self._set_reason(reason, force=opened)
            self._backoff = self.config.initial_backoff
        except NvmlUnavailable as exc:
            self._fail(exc.reason, now)
            gpus = ()
            entries = []
        if gpus and self._annotate is not None:
            try:
                gpus = self._annotate(gpus)
            except Exception:
                self.log.exception("gpu-devbox: annotating a sample failed; published as it was")
        snapshot = self._make_snapshot(gpus, now)
        if gpus:
            self._append_history(now, entries)
        self._publish(snapshot)
        return snapshot

    def _open(self) -> None:
        system, devices = self.adapter.open()
        self._system = system
        self._devices = devices
        self._slow = {}
        self._faults = {d.index: d.error for d in devices if d.error is not None}
        self._last_slow = -math.inf
        identities = []
        for device in devices:
            mig = self._open_mig(device)
            self._slow[device.uuid] = {"mig": mig} if mig is not None else {}
            instances = mig["instances"] if mig is not None else []
            identities.append(
                DeviceIdentity(
                    index=device.index,
                    uuid=device.uuid,
                    mig_uuids=tuple(i["uuid"] for i in instances if i["uuid"]),
                )
            )
        self._selection = self.visible.select(identities)
        by_index = {d.index: d for d in devices}
        self._visible_devices = [(by_index[s.index], s.mig_uuids) for s in self._selection]
        # Every document has all its keys from the first, in place: readings change values.
        self._templates = {
            device.uuid: template(device.identity, sampled_tail(self._slow[device.uuid], mig_uuids))
            for device, mig_uuids in self._visible_devices
        }
        self.log.info(
            "gpu-devbox: NVML ready, driver %s (CUDA %s), %d GPU(s), %d visible (%s)",
            system.driver_version,
            system.cuda_driver_version,
            len(devices),
            len(self._selection),
            self.visible.describe(),
        )

    def _open_mig(self, device: Device) -> dict[str, Any] | None:
        if device.error is not None:
            return None
        try:
            return self.adapter.mig(device)
        except NvmlUnavailable as exc:
            self._fault(device, exc.reason)
            return None

    def _sample_all(self, slow: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every visible GPU's document and history entry; a GPU that fails is published with
        its reason.

        Raises:
            NvmlUnavailable: every visible GPU failed (NVML itself is the problem).
        """
        documents = []
        entries = []
        failed: list[Reason] = []
        faults = self._faults
        templates = self._templates
        read = self.adapter.read
        for device, mig_uuids in self._visible_devices:
            uuid = device.uuid
            reading: tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None] | None
            if device.error is None and not faults:
                # The usual case, written out: no GPU is failing.
                try:
                    reading = read(device, slow=slow, template=templates[uuid])
                except NvmlUnavailable as exc:
                    self._fault(device, exc.reason)
                    reading = None
            else:
                reading = self._sample_one(device, slow)
            reason = faults.get(device.index) if faults else None
            if reading is None or reason is not None:
                assert reason is not None
                failed.append(reason)
                document = unreadable_gpu(device, reason)
                documents.append(document)
                entries.append(history_entry(document))
                continue
            document, entry, fresh = reading
            if fresh is not None:
                # The costly values were read (the slow fields, or processes and MIG again
                # when memory use changed): they end this and the next documents.
                cached = self._slow.setdefault(uuid, {})
                cached.update(fresh)
                tail = sampled_tail(cached, mig_uuids)
                templates[uuid] = template(device.identity, tail)
                document.update(tail)  # its keys are in place already: their values change
            documents.append(document)
            entries.append(entry)
        if failed and len(failed) == len(documents):
            raise NvmlUnavailable(failed[0])
        return documents, entries

    def _sample_one(
        self, device: Device, slow: bool
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None] | None:
        """One GPU's reading; ``None`` while it cannot be read (retried at the slow cadence)."""
        if device.error is not None or (device.index in self._faults and not slow):
            return None
        try:
            reading = self.adapter.read(
                device,
                slow=slow or device.index in self._faults,
                template=self._templates[device.uuid],
            )
        except NvmlUnavailable as exc:
            self._fault(device, exc.reason)
            return None
        if self._faults.pop(device.index, None) is not None:
            self.log.warning("gpu-devbox: GPU %d (%s) answers again", device.index, device.uuid)
        return reading

    def _fault(self, device: Device, reason: Reason) -> None:
        if self._faults.get(device.index) != reason:
            self.log.warning(
                "gpu-devbox: GPU %d (%s) cannot be read: %s The other GPUs carry on. Remedy: %s",
                device.index,
                device.uuid,
                reason.message,
                reason.remedy,
            )
        self._faults[device.index] = reason

    def _fail(self, reason: Reason, now: float) -> None:
        first = self._reason is None or self._reason.code != reason.code
        (self.log.warning if first else self.log.debug)(
            "gpu-devbox: NVML unavailable: %s Retrying in %.0f s. Remedy: %s",
            reason.message,
            self._backoff,
            reason.remedy,
        )
        self.adapter.close()
        self._devices = []
        self._selection = []
        self._visible_devices = []
        self._faults = {}
        self._set_reason(reason)
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, self.config.max_backoff)

    # ------------------------------------------------------------------ results
    def _make_snapshot(self, gpus: tuple[dict[str, Any], ...], now: float) -> Snapshot:
        # What the frozen dataclass's ``__init__`` and :meth:`Snapshot.encode` do, without
        # ``object.__setattr__`` for each field and the generic ``document()`` (a microsecond
        # and a half a tick): every field is given here.
        body = _encode({"timestamp": now, "simulated": self.simulated, "gpus": gpus})
        snapshot: Snapshot = object.__new__(Snapshot)
        snapshot.__dict__.update(
            timestamp=now,
            simulated=self.simulated,
            gpus=gpus,
            status_version=self._status_version,
            body=body,
            frame=b'{"type":"gpus","data":' + body + b"}",
        )
        return snapshot

    def _append_history(self, timestamp: float, entries: list[dict[str, Any]]) -> None:
        # orjson's bytes keep the buffer it wrote into (4 KiB at least, 64 KiB for 5 KB of
        # JSON): an entry kept for 10 minutes is copied into bytes of its own size, which takes
        # a tenth of a microsecond and a tenth of the memory for a few GPUs.
        body = bytes(memoryview(_encode({"timestamp": timestamp, "gpus": entries})))
        with self._lock:
            self._history.append((timestamp, body))

    def _publish(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        if not self._ready.is_set():  # setting it takes its condition's lock: once is enough
            self._ready.set()
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except Exception:  # noqa: PERF203 - each listener is isolated from the others' failures
                self.log.exception("gpu-devbox sampler listener failed")

    def _set_reason(self, reason: Reason | None, *, force: bool = False) -> None:
        if reason == self._reason and not force:
            return
        self._reason = reason
        self._update_status()

    def _update_status(self) -> None:
        system = self._system if self.adapter.is_open else None
        reason = self._reason
        unusable = reason is not None and reason.code is not ReasonCode.NO_VISIBLE_GPU
        with self._lock:
            self._status_version += 1
            self._status = {
                "nvml": {
                    "available": self.adapter.is_open and not unusable,
                    "reason": reason.message if reason else None,
                    "reason_code": reason.code.value if reason else None,
                    "remedy": reason.remedy if reason else None,
                    "nvml_error": reason.nvml_error if reason else None,
                    "driver_version": system.driver_version if system else None,
                    "cuda_driver_version": system.cuda_driver_version if system else None,
                    "nvml_version": system.nvml_version if system else None,
                },
                "gpu_count": len(self._devices),
                "visible_gpu_count": len(self._selection),
                "visible_devices": self.visible.describe(),
                "interval": self.config.interval,
                "history_seconds": self.config.history_seconds,
                "simulated": self.simulated,
                "version": self.version,
            }

    def status(self) -> dict[str, Any]:
        """NVML's availability and why not, the driver versions, and the sampler's settings."""
        with self._lock:
            return dict(self._status)

    def snapshot(self) -> Snapshot:
        """The latest snapshot (never blocks, never calls NVML)."""
        return self._snapshot

    def history(self, since: float | None = None) -> list[bytes]:
        """The history samples taken strictly after ``since`` (all when ``None``), each as
        compact JSON in UTF-8."""
        with self._lock:
            entries = list(self._history)
        if since is None:
            return [body for _, body in entries]
        start = bisect.bisect_right([t for t, _ in entries], since)
        return [body for _, body in entries[start:]]

    def subscribe(self, listener: Callable[[Snapshot], None]) -> Callable[[], None]:
        """Call ``listener`` from the sampler thread after every tick; returns an unsubscriber."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe
