"""The benchmark as a service: request validation, the runner and the history behind one object.

The Jupyter server and ``gpu-devbox bench`` both go through :meth:`BenchmarkService.submit`, so a
request is checked the same way everywhere: unknown suite, unknown or simulated GPU, malformed or
absurd sizes are refused with a message before any process starts.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from gpu_devbox.bench import host, suites
from gpu_devbox.bench.devices import DeviceError, parse_devices, select_targets
from gpu_devbox.bench.history import History
from gpu_devbox.bench.run import DeviceTarget, RunRequest
from gpu_devbox.bench.runner import WORKER_ARGV, BenchmarkRunner, Listener
from gpu_devbox.quote import brief

#: The fields a request may have.
REQUEST_FIELDS = ("suite", "devices", "sizes")
#: The largest memory fraction a benchmark may be allowed.
MAX_MEMORY_FRACTION = 0.95


class BadRequest(ValueError):
    """A request that cannot run as asked; the message names the problem."""


class Disabled(Exception):
    """Benchmarks are turned off by configuration."""


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """How benchmarks may run on this server (the ``c.GPUDevbox.benchmark_*`` settings)."""

    enabled: bool = True
    #: Seconds per suite and per device before a run is stopped.
    timeouts: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: {name: spec.timeout for name, spec in suites.SUITES.items()}
    )
    #: The share of free GPU (and available host) memory a run may use.
    max_memory_fraction: float = 0.5
    #: The history file (``None``: the default in Jupyter's data directory).
    history_path: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.max_memory_fraction <= MAX_MEMORY_FRACTION:
            raise ValueError(
                f"max_memory_fraction must be in (0, {MAX_MEMORY_FRACTION}], "
                f"not {self.max_memory_fraction}"
            )
        for name, seconds in self.timeouts.items():
            if name not in suites.SUITES:
                raise ValueError(
                    f"timeout for unknown suite {name!r}; suites: {list(suites.SUITES)}"
                )
            if not 0 < seconds <= 86_400:
                raise ValueError(f"the {name} timeout must be between 0 and 86400 s, not {seconds}")

    def timeout(self, suite: str) -> float:
        """Seconds a run of ``suite`` may take per device."""
        return float(self.timeouts.get(suite, suites.SUITES[suite].timeout))


class BenchmarkService:
    """Validates requests, runs them one at a time and answers questions about runs."""

    def __init__(
        self,
        config: BenchmarkConfig | None = None,
        *,
        on_event: Listener | None = None,
        logger: logging.Logger | None = None,
        worker_argv: Sequence[str] = WORKER_ARGV,
        save: bool = True,
    ) -> None:
        self.config = config or BenchmarkConfig()
        self.history = History(self.config.history_path)
        self.runner = BenchmarkRunner(
            history=self.history if save else None,
            on_event=on_event,
            worker_argv=worker_argv,
            logger=logger,
        )

    def build_request(
        self,
        body: Any,
        gpus: Sequence[Mapping[str, Any]],
        *,
        simulated: bool = False,
        driver_version: str | None = None,
        backend: str = "auto",
    ) -> RunRequest:
        """Check a request body against the visible GPUs and the memory they have free.

        Raises:
            BadRequest: anything wrong with the body, with a message naming it.
        """
        if not isinstance(body, Mapping):
            raise BadRequest('the request body must be a JSON object like {"suite": "quick"}')
        unknown = sorted(brief(name) for name in body if name not in REQUEST_FIELDS)
        if unknown:
            more = f", ... ({len(unknown) - 3} more)" if unknown[3:] else ""
            named = f"[{', '.join(unknown[:3])}{more}]"
            raise BadRequest(f"unknown field(s) {named}; allowed: {', '.join(REQUEST_FIELDS)}")
        try:
            spec = suites.suite(body.get("suite", "quick"))
            sizes = suites.parse_sizes(body.get("sizes"))
            targets = select_targets(
                gpus,
                parse_devices(body.get("devices")),
                simulated=simulated,
                driver_version=driver_version,
            )
            if sizes:
                self._check_memory(spec, targets, sizes)
        except (suites.SuiteError, DeviceError) as exc:
            raise BadRequest(str(exc)) from None
        per_device = self.config.timeout(spec.name)
        return RunRequest(
            suite=spec.name,
            targets=targets,
            sizes=sizes,
            backend=backend,
            timeout=per_device * max(1, len(targets)),
            max_memory_fraction=self.config.max_memory_fraction,
        )

    def _check_memory(
        self, spec: suites.SuiteSpec, targets: tuple[DeviceTarget, ...], sizes: dict[str, int]
    ) -> None:
        fraction = self.config.max_memory_fraction
        host_budget = int(host.available_memory() * fraction)
        free = [t.memory_free for t in targets if t.memory_free is not None]
        device_budget = int(min(free) * fraction) if free else host_budget
        suites.suite_sizes(
            spec,
            "gpu" if targets else "cpu",
            device_budget=device_budget,
            host_budget=host_budget,
            requested=sizes,
        )

    def submit(self, request: RunRequest) -> dict[str, Any]:
        """Start a checked request; the run's first document.

        Raises:
            Disabled: benchmarks are turned off.
            RunnerBusy: a run is in progress (its id is on the exception).
            OSError: the worker could not be started.
        """
        if not self.config.enabled:
            raise Disabled(
                "benchmarks are disabled on this server (c.GPUDevbox.benchmarks_enabled)"
            )
        return self.runner.start(request)

    def get(self, run_id: str) -> dict[str, Any] | None:
        """A run of this server, or one from the history."""
        return self.runner.get(run_id) or self.history.find(run_id)

    def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel a run in progress (see :meth:`BenchmarkRunner.cancel`)."""
        return self.runner.cancel(run_id)

    def listing(self, limit: int) -> dict[str, Any]:
        """``GET benchmarks``: the run in progress and the recorded runs, newest first."""
        found = self.history.read(limit)
        return {
            "enabled": self.config.enabled,
            "suites": {
                name: {"description": spec.description, "timeout": self.config.timeout(name)}
                for name, spec in suites.SUITES.items()
            },
            "running": self.runner.current(),
            "runs": found.runs,
            "skipped_lines": found.skipped_lines,
        }

    def close(self) -> None:
        """Stop the run in progress, if any."""
        self.runner.close()
