"""The gpu-devbox jupyter-server extension: configuration, routes and lifecycle.

Configure it in ``jupyter_server_config.py`` (or ``jupyter_gpu_devbox_config.py``)::

    c.GPUDevbox.interval = 2.0           # sample every 2 s
    c.GPUDevbox.backend = "simulated"    # demo without a GPU
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Enum, Float, Int, List, TraitError, Unicode, default, validate

from gpu_devbox import activity
from gpu_devbox._version import __version__
from gpu_devbox.attribution import NAMESPACES, Attributor
from gpu_devbox.bench import suites
from gpu_devbox.bench.service import MAX_MEMORY_FRACTION, BenchmarkConfig, BenchmarkService
from gpu_devbox.gpus import NvmlAdapter, Sampler, SamplerConfig, VisibleDevices
from gpu_devbox.gpus.backends import BACKENDS, SIMULATED_FIELDS, BackendSpec, backend_from_env
from gpu_devbox.server import (
    activity_handlers,
    bench_handlers,
    checks_handlers,
    gpus_handlers,
    kernels_handlers,
    kernels_prometheus,
    metrics_handler,
    prometheus,
)
from gpu_devbox.server.base import API_PREFIX, FALLBACK_ROUTE
from gpu_devbox.server.fanout import StreamFanout
from gpu_devbox.server.kernels import KernelsService
from gpu_devbox.server.state import ServerState, status_document
from gpu_devbox.server.stream import StreamHandler


def _env_list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


class GPUDevbox(ExtensionApp):
    """Live GPU metrics, CUDA checks and a GPU benchmark for Jupyter servers."""

    name = "gpu_devbox"
    description = __doc__ or ""
    load_other_extensions = True

    # ------------------------------------------------------------------ configuration
    backend = Enum(
        list(BACKENDS),
        default_value="nvml",  # shown in the help; GPU_DEVBOX_BACKEND wins (below)
        help="""Where GPU data comes from: ``"nvml"`` or ``"simulated"``.

        ``"nvml"`` (the default) reads the GPUs through NVIDIA's NVML library. ``"simulated"``
        invents H100-like GPUs for demos and tests on machines without one; every payload then
        says ``"simulated": true``. The environment variable ``GPU_DEVBOX_BACKEND`` sets the
        default, e.g. ``GPU_DEVBOX_BACKEND=simulated jupyter lab``.
        Example: ``c.GPUDevbox.backend = "simulated"``.
        """,
    ).tag(config=True)

    @default("backend")
    def _backend_default(self) -> str:
        try:
            return backend_from_env()
        except ValueError as exc:
            self.log.error("gpu-devbox: %s; using 'nvml'", exc)
            return "nvml"

    interval = Float(
        1.0,
        help="""Seconds between two GPU samples (0.1 to 3600 s). Every client reads the same
        samples, so this is also the fastest rate the push stream offers.
        Example: ``c.GPUDevbox.interval = 2.0``.""",
    ).tag(config=True)

    slow_interval = Float(
        5.0,
        help="""Seconds between two readings of the costly fields: energy (about 4 ms per GPU
        on an H100), ECC counters, processes and MIG instances. At least ``interval`` (a
        shorter value is raised to it), at most a week (604800 s).
        Example: ``c.GPUDevbox.slow_interval = 10.0``.""",
    ).tag(config=True)

    history_seconds = Float(
        600.0,
        help="""Seconds of samples the server keeps in memory for ``GET gpus/history`` and
        for charts opened later (600 s, 10 minutes, by default; at least ``interval``, at most a
        week). Example: ``c.GPUDevbox.history_seconds = 3600.0``.""",
    ).tag(config=True)

    visible_devices = Unicode(
        "",
        help="""Which GPUs to show: a CUDA_VISIBLE_DEVICES-style, comma-separated list of
        NVML indices, ``GPU-`` or ``MIG-`` UUIDs. Empty (the default) follows the server's
        ``CUDA_VISIBLE_DEVICES`` and ``NVIDIA_VISIBLE_DEVICES``.
        Example: ``c.GPUDevbox.visible_devices = "0,2"``.""",
    ).tag(config=True)

    simulated_gpus = Int(
        2,  # shown in the help; GPU_DEVBOX_SIMULATED_GPUS wins (below)
        help="""How many GPUs the simulated backend invents (0 to 64 GPUs). Default 2, or
        ``GPU_DEVBOX_SIMULATED_GPUS``. Example: ``c.GPUDevbox.simulated_gpus = 4``.""",
    ).tag(config=True)

    @default("simulated_gpus")
    def _simulated_gpus_default(self) -> int:
        raw = os.environ.get("GPU_DEVBOX_SIMULATED_GPUS", "2")
        try:
            return int(raw)
        except ValueError:
            self.log.error("gpu-devbox: GPU_DEVBOX_SIMULATED_GPUS=%r is not an integer", raw)
            return 2

    simulated_mig = List(
        Int(),
        help="""NVML indices of the simulated GPUs that run in MIG mode (each split into
        3g.40gb, 2g.20gb and 1g.10gb instances). Default none, or
        ``GPU_DEVBOX_SIMULATED_MIG=0,1``. Example: ``c.GPUDevbox.simulated_mig = [1]``.""",
    ).tag(config=True)

    @default("simulated_mig")
    def _simulated_mig_default(self) -> list[int]:
        try:
            return [int(v) for v in _env_list("GPU_DEVBOX_SIMULATED_MIG")]
        except ValueError:
            self.log.error("gpu-devbox: GPU_DEVBOX_SIMULATED_MIG must list integers")
            return []

    simulated_unsupported = List(
        Unicode(),
        help=f"""Names of the fields the simulated GPUs answer with "Not Supported", as real
        GPUs often do. Allowed: {", ".join(SIMULATED_FIELDS)}. Default none, or
        ``GPU_DEVBOX_SIMULATED_UNSUPPORTED=power,pcie``.
        Example: ``c.GPUDevbox.simulated_unsupported = ["power", "pcie"]``.""",
    ).tag(config=True)

    @default("simulated_unsupported")
    def _simulated_unsupported_default(self) -> list[str]:
        return _env_list("GPU_DEVBOX_SIMULATED_UNSUPPORTED")

    simulated_processes_file = Unicode(
        "",
        help="""A JSON file listing the compute processes the simulated GPUs run, instead of
        the work they invent: ``[{"gpu": 0, "pid": 4242, "used_memory": 2147483648}]`` runs
        process 4242 on GPU 0 with 2 GiB for as long as it lives. Optional keys: ``local_pid``
        (the process to follow when ``pid`` is the PID NVML would report from outside this
        server's PID namespace), ``instance`` (a MIG instance) and ``sm_utilization`` (%). Read
        again whenever it changes; while it does not exist, the GPUs run their invented work.
        For demos and tests of process attribution. Default none, or
        ``GPU_DEVBOX_SIMULATED_PROCESSES``.
        Example: ``c.GPUDevbox.simulated_processes_file = "/tmp/gpu-processes.json"``.""",
    ).tag(config=True)

    @default("simulated_processes_file")
    def _simulated_processes_file_default(self) -> str:
        return os.environ.get("GPU_DEVBOX_SIMULATED_PROCESSES", "")

    exclusive_gpus = Bool(
        True,
        help="""Whether the GPUs this server sees run only its own container's processes, as
        when Kubernetes' device plugin hands each GPU to one pod. It matters only when the
        server has its own PID namespace (a container), where NVML reports the host's PIDs and
        processes are matched to kernels through the NVIDIA device files they hold open: on an
        exclusive GPU every process is this container's, so counting tells which kernel holds
        it. Set it to False on nodes that share GPUs between pods (time-slicing, MPS): a process
        is then attributed only where no other container's could be it. A GPU that runs more
        processes than this container could have started is treated as shared either way; MIG
        instances this server cannot see are other containers' either way.
        Example: ``c.GPUDevbox.exclusive_gpus = False``.""",
    ).tag(config=True)

    pid_namespace = Enum(
        list(NAMESPACES),
        default_value="auto",
        help="""Whose PIDs NVML reports, for process attribution: ``"auto"`` (the default)
        decides from ``/proc``: the server's own when its PID namespace is the host's initial
        one (a workstation, a VM, ``hostPID: true``), the host's otherwise (a container).
        ``"shared"`` and ``"separate"`` say so instead.
        Example: ``c.GPUDevbox.pid_namespace = "separate"``.""",
    ).tag(config=True)

    stream_ping_interval = Float(
        30.0,
        help="""Seconds between two websocket pings of each push-stream client (0 turns pings
        off, at most 3600 s). A client that does not answer a ping within the same number of
        seconds is disconnected, so a vanished or stalled client never holds the server's
        memory for long. Example: ``c.GPUDevbox.stream_ping_interval = 10.0``.""",
    ).tag(config=True)

    @validate("stream_ping_interval")
    def _check_ping_interval(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 0 <= value <= 3600:
            raise TraitError(
                f"GPUDevbox.stream_ping_interval must be between 0 and 3600 s, not {value}"
            )
        return value

    gpu_busy_utilization = Float(
        5.0,
        help="""Utilization, in percent (0 to 100), at or above which a GPU counts as busy for
        the GPU idle clock (``gpu_busy_at`` and ``gpu_idle_seconds`` in ``GET status``, which an
        idle culler reads). Example: ``c.GPUDevbox.gpu_busy_utilization = 10.0``.""",
    ).tag(config=True)

    @validate("gpu_busy_utilization")
    def _check_busy_utilization(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 0 <= value <= 100:
            raise TraitError(
                f"GPUDevbox.gpu_busy_utilization must be between 0 and 100 %, not {value}"
            )
        return value

    gpu_busy_memory_change = Int(
        256 * activity.MIB,
        help="""A change of a GPU's memory used larger than this many bytes between two samples
        counts as GPU activity, even at 0 % utilization (a job loading or freeing a model).
        Default 268435456 bytes (256 MiB).
        Example: ``c.GPUDevbox.gpu_busy_memory_change = 1073741824``.""",
    ).tag(config=True)

    @validate("gpu_busy_memory_change")
    def _check_busy_memory(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if value < 0:
            raise TraitError(
                f"GPUDevbox.gpu_busy_memory_change must be at least 0 bytes, not {value}"
            )
        return value

    prometheus_enabled = Bool(
        True,
        help="""Add GPU metrics to the server's ``/metrics`` endpoint (read from the sampler's
        cache at scrape time; a scrape never calls NVML). Only users the authorizer allows to
        ``read`` the ``gpu-devbox`` resource get them; other users get the server's other
        metrics. Example: ``c.GPUDevbox.prometheus_enabled = False``.""",
    ).tag(config=True)

    prometheus_prefix = Unicode(
        "gpu_devbox",
        help="""Prefix of the Prometheus metric names (letters, digits, ``_`` and ``:``, not
        starting with a digit): ``gpu_devbox`` gives ``gpu_devbox_memory_used_bytes``.
        Example: ``c.GPUDevbox.prometheus_prefix = "jupyter_gpu"``.""",
    ).tag(config=True)

    prometheus_dcgm_names = Bool(
        False,
        help="""Also export the DCGM-exporter metric names (``DCGM_FI_DEV_GPU_UTIL``,
        ``DCGM_FI_DEV_FB_USED``, ...), in dcgm-exporter's units (percent, MiB, MHz), so Grafana
        dashboards built for dcgm-exporter work. Off by default: on clusters that also run
        dcgm-exporter it would double count.
        Example: ``c.GPUDevbox.prometheus_dcgm_names = True``.""",
    ).tag(config=True)

    prometheus_kernel_metrics = Bool(
        False,
        help="""Also export, on ``/metrics``, the GPU memory each kernel holds
        (``gpu_devbox_kernel_memory_used_bytes`` with the labels ``gpu``, ``kernel``: the first
        8 characters of the kernel id, and ``kernel_name``; at most 64 kernels, those holding
        the most) and the number of compute processes per GPU by owner
        (``gpu_devbox_processes``). Off by default: kernel ids come and go, and each is a new
        series. Example: ``c.GPUDevbox.prometheus_kernel_metrics = True``.""",
    ).tag(config=True)

    benchmarks_enabled = Bool(
        True,
        help="""Let users run the GPU benchmark (``POST gpu-devbox/api/benchmarks``, the panel's
        Benchmark section). Off, new runs are refused with 403; the history stays readable. To
        refuse them per user instead, deny the ``gpu-devbox-benchmarks`` resource in your
        authorizer. Example: ``c.GPUDevbox.benchmarks_enabled = False``.""",
    ).tag(config=True)

    benchmark_timeouts = Dict(
        value_trait=Float(),
        per_key_traits=None,
        help=f"""Seconds a benchmark run may take per GPU, by suite (above 0, at most 86400 s
        each), before it is stopped and reported as failed (the worker process is killed).
        Suites not named keep their default (in seconds):
        {", ".join(f"{n}={s.timeout:g}" for n, s in suites.SUITES.items())}, generous on
        purpose: the first import of PyTorch from a cold disk can take many seconds.
        Example: ``c.GPUDevbox.benchmark_timeouts = {{"full": 300.0}}``.""",
    ).tag(config=True)

    benchmark_max_memory_fraction = Float(
        0.5,
        help=f"""The share of a GPU's free memory (and of the host's available memory) a
        benchmark may use, as a fraction above 0 and at most {MAX_MEMORY_FRACTION} (not a
        percentage). Sizes are derived from it, so a benchmark never takes memory a notebook on
        the same GPU is about to need. Default 0.5.
        Example: ``c.GPUDevbox.benchmark_max_memory_fraction = 0.25``.""",
    ).tag(config=True)

    benchmark_history_file = Unicode(
        "",
        help="""Path of the file finished benchmark runs are appended to, one JSON document per
        line. Empty (the default) means ``benchmarks.jsonl`` in the ``gpu_devbox`` folder of
        Jupyter's data directory (``jupyter --data-dir``).
        Example: ``c.GPUDevbox.benchmark_history_file = "/srv/gpu-devbox/benchmarks.jsonl"``.""",
    ).tag(config=True)

    @validate("benchmark_timeouts")
    def _check_timeouts(self, proposal: dict[str, Any]) -> dict[str, float]:
        value = dict(proposal["value"])
        for name, seconds in value.items():
            if name not in suites.SUITES:
                raise TraitError(
                    f"GPUDevbox.benchmark_timeouts: unknown suite {name!r}; "
                    f"suites: {', '.join(suites.SUITES)}"
                )
            if not 0 < float(seconds) <= 86_400:
                raise TraitError(
                    f"GPUDevbox.benchmark_timeouts[{name!r}] must be between 0 and 86400 s, "
                    f"not {seconds}"
                )
        return {name: float(seconds) for name, seconds in value.items()}

    @validate("benchmark_max_memory_fraction")
    def _check_memory_fraction(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 0 < value <= MAX_MEMORY_FRACTION:
            raise TraitError(
                f"GPUDevbox.benchmark_max_memory_fraction must be in (0, {MAX_MEMORY_FRACTION}], "
                f"not {value}"
            )
        return value

    checks_probe_timeout = Float(
        60.0,
        help="""Seconds the CUDA checks give each Python environment (the server's own and each
        kernelspec's) to report its torch, cupy, jax and tensorflow (1 to 600 s). Importing
        them takes seconds; an environment that does not answer in time is reported, not waited
        on. Example: ``c.GPUDevbox.checks_probe_timeout = 120.0``.""",
    ).tag(config=True)

    checks_probe_kernelspecs = Bool(
        True,
        help="""Probe every kernelspec whose argv[0] is a Python interpreter for the CUDA checks
        (``GET checks``), not only the server's own Python. Turn off when kernelspecs are
        remote or slow to start. Example: ``c.GPUDevbox.checks_probe_kernelspecs = False``.""",
    ).tag(config=True)

    @validate("checks_probe_timeout")
    def _check_probe_timeout(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 1 <= value <= 600:
            raise TraitError(
                f"GPUDevbox.checks_probe_timeout must be between 1 and 600 s, not {value}"
            )
        return value

    @validate("interval")
    def _check_interval(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not 0.1 <= value <= 3600:
            raise TraitError(f"GPUDevbox.interval must be between 0.1 and 3600 s, not {value}")
        return value

    @validate("slow_interval", "history_seconds")
    def _check_positive(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        name = proposal["trait"].name
        if not 0 < value <= 7 * 86400:
            raise TraitError(f"GPUDevbox.{name} must be between 0 and a week, not {value}")
        return value

    @validate("simulated_gpus")
    def _check_simulated_gpus(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if not 0 <= value <= 64:
            raise TraitError(f"GPUDevbox.simulated_gpus must be between 0 and 64, not {value}")
        return value

    @validate("simulated_unsupported")
    def _check_unsupported(self, proposal: dict[str, Any]) -> list[str]:
        bad = sorted(set(proposal["value"]) - set(SIMULATED_FIELDS))
        if bad:
            raise TraitError(
                f"GPUDevbox.simulated_unsupported: unknown field(s) {bad}; "
                f"allowed: {', '.join(SIMULATED_FIELDS)}"
            )
        return list(proposal["value"])

    @validate("prometheus_prefix")
    def _check_prefix(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if not prometheus.METRIC_PREFIX.match(value):
            raise TraitError(f"GPUDevbox.prometheus_prefix {value!r} is not a valid metric name")
        return value

    # ------------------------------------------------------------------ lifecycle
    _state: ServerState | None = None
    _unregister_metrics: Callable[[], None] | None = None
    _unregister_activity_metrics: Callable[[], None] | None = None
    _unregister_kernel_metrics: Callable[[], None] | None = None

    def _make_adapter(self) -> NvmlAdapter:
        spec = BackendSpec(
            name=self.backend,
            simulated_gpus=self.simulated_gpus,
            simulated_mig=self.simulated_mig,
            simulated_unsupported=self.simulated_unsupported,
            simulated_processes_file=self.simulated_processes_file or None,
        )
        simulated = spec.make_simulated() if spec.simulated else None
        # the simulated GPUs' load control (PUT simulated/load) reaches them through this
        self.settings["gpu_devbox_simulated"] = simulated
        return spec.make_adapter(simulated)

    def _make_activity(self) -> activity.ServerActivity:
        """The GPU idle clock, with the idle policy the spawner put in the environment."""
        try:
            policy = activity.CullPolicy.from_env(os.environ)
        except activity.PolicyError as exc:
            self.log.error("gpu-devbox: ignoring the idle policy: %s", exc)
            policy = None
        if policy is not None:
            self.log.info(
                "gpu-devbox: idle policy: stopped after %.0f s of GPU idleness, warned %.0f s "
                "before, 'Keep running' at most %d time(s)",
                policy.gpu_idle_after,
                policy.warn_before,
                policy.keep_running,
            )
        thresholds = activity.BusyThresholds(
            utilization=self.gpu_busy_utilization, memory_change=self.gpu_busy_memory_change
        )
        return activity.ServerActivity(policy, thresholds)

    def initialize_settings(self) -> None:
        """Start the sampler and share it with the handlers."""
        interval = self.interval
        config = SamplerConfig(
            interval=interval,
            slow_interval=max(self.slow_interval, interval),
            history_seconds=max(self.history_seconds, interval),
        )
        attributor = Attributor(
            exclusive_gpus=self.exclusive_gpus,
            namespace=self.pid_namespace,
            rescan=config.slow_interval,
            logger=self.log,
        )
        sampler = Sampler(
            self._make_adapter(),
            simulated=self.backend == "simulated",
            visible=VisibleDevices.from_env(os.environ, override=self.visible_devices or None),
            config=config,
            version=__version__,
            logger=self.log,
            annotate=attributor.annotate,
        )
        serverapp = self.serverapp
        probe_kernelspecs = self.checks_probe_kernelspecs and serverapp is not None
        checks = checks_handlers.make_service(
            sampler,
            serverapp.kernel_spec_manager if probe_kernelspecs and serverapp else None,
            probe_timeout=self.checks_probe_timeout,
            logger=self.log,
        )
        tracker = self._make_activity()
        # before the fan-out's listener, so a pushed status has this tick's activity
        sampler.subscribe(tracker.observe_snapshot)
        fanout = StreamFanout(
            sampler,
            ping_interval=self.stream_ping_interval,
            status=lambda: status_document(sampler, tracker),
            status_version=lambda: tracker.version,
        )
        state = ServerState(sampler=sampler, fanout=fanout, checks=checks, activity=tracker)
        state.benchmarks = self._make_benchmarks(fanout)
        state.kernels = self._make_kernels(attributor, sampler)
        self._state = state
        self.settings.update({"gpu_devbox": state})
        sampler.start()
        if self.prometheus_enabled:
            collector = prometheus.GpuCollector(
                sampler, prefix=self.prometheus_prefix, dcgm_names=self.prometheus_dcgm_names
            )
            self._unregister_metrics = prometheus.register(collector)
            self._unregister_activity_metrics = prometheus.register(
                activity_handlers.ActivityCollector(tracker, prefix=self.prometheus_prefix)
            )
            if self.prometheus_kernel_metrics:
                self._unregister_kernel_metrics = kernels_prometheus.register(
                    kernels_prometheus.KernelCollector(attributor, prefix=self.prometheus_prefix)
                )
        self.log.info(
            "gpu-devbox %s: %s backend, sampling every %.1f s",
            __version__,
            self.backend,
            interval,
        )

    def _make_benchmarks(self, fanout: StreamFanout) -> BenchmarkService:
        timeouts = {name: spec.timeout for name, spec in suites.SUITES.items()}
        timeouts.update(self.benchmark_timeouts)
        config = BenchmarkConfig(
            enabled=self.benchmarks_enabled,
            timeouts=timeouts,
            max_memory_fraction=self.benchmark_max_memory_fraction,
            history_path=self.benchmark_history_file or None,
        )
        return BenchmarkService(
            config,
            on_event=lambda event: fanout.publish_threadsafe("benchmark", event),
            logger=self.log,
        )

    def _make_kernels(self, attributor: Attributor, sampler: Sampler) -> KernelsService | None:
        serverapp = self.serverapp
        if serverapp is None:
            return None
        io_loop = getattr(serverapp, "io_loop", None)
        if io_loop is None:
            return None
        service = KernelsService(
            attributor,
            sampler,
            kernel_manager=getattr(serverapp, "kernel_manager", None),
            session_manager=getattr(serverapp, "session_manager", None),
            terminal_manager=lambda: serverapp.web_app.settings.get("terminal_manager"),
            add_callback=io_loop.add_callback,
            logger=self.log,
        )
        service.start()
        return service

    def initialize_handlers(self) -> None:
        """Register the REST routes and the push stream."""
        self.handlers.extend(gpus_handlers.ROUTES)
        self.handlers.extend(bench_handlers.ROUTES)
        self.handlers.extend(checks_handlers.ROUTES)
        self.handlers.extend(kernels_handlers.ROUTES)
        self.handlers.append((f"{API_PREFIX}/stream", StreamHandler))
        self.handlers.extend(activity_handlers.routes(simulated=self.backend == "simulated"))
        if self.prometheus_enabled:  # /metrics, with the GPU series only for authorized users
            self.handlers.extend(metrics_handler.ROUTES)
        self.handlers.append(FALLBACK_ROUTE)  # last: a JSON 404 for any other API path

    async def stop_extension(self) -> None:
        """Stop sampling, close streams and shut NVML down."""
        if self._unregister_metrics is not None:
            self._unregister_metrics()
            self._unregister_metrics = None
        if self._unregister_activity_metrics is not None:
            self._unregister_activity_metrics()
            self._unregister_activity_metrics = None
        if self._unregister_kernel_metrics is not None:
            self._unregister_kernel_metrics()
            self._unregister_kernel_metrics = None
        if self._state is not None:
            await self._state.checks.close()  # kills probe subprocesses still running
            self._state.close()
            self._state = None
