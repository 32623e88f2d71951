"""Probing Python environments: the server's interpreter and every Python kernelspec.

Each environment gets one subprocess running :mod:`gpu_devbox.cuda.probe_script` with asyncio
and a timeout, so importing torch (seconds) never happens in the server process or on its
event loop. Environments with the same interpreter and environment share one probe; a probe
that times out, or whose server stops, is killed with its process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import glob
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gpu_devbox.cuda import tables

PROBE_MARKER = "GPU_DEVBOX_PROBE "
_PYTHON_NAME = re.compile(r"^python(\d+(\.\d+)?)?$")


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """The parts of a kernelspec the probe needs."""

    name: str
    display_name: str | None
    argv: tuple[str, ...]
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> KernelSpec:
        """From a ``kernel.json`` document."""
        env = spec.get("env") or {}
        return cls(
            name=name,
            display_name=spec.get("display_name"),
            argv=tuple(str(a) for a in spec.get("argv") or ()),
            env={str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {},
        )


def find_kernelspecs() -> list[KernelSpec]:
    """Every kernelspec on Jupyter's data path (first one of each name wins, as in Jupyter)."""
    from jupyter_core.paths import jupyter_path

    specs: dict[str, KernelSpec] = {}
    for folder in jupyter_path("kernels"):
        for path in sorted(glob.glob(os.path.join(folder, "*", "kernel.json"))):
            name = os.path.basename(os.path.dirname(path)).lower()
            if name in specs:
                continue
            try:
                with open(path, encoding="utf-8") as handle:
                    document = json.load(handle)
            except (OSError, ValueError):
                continue
            if isinstance(document, dict):
                specs[name] = KernelSpec.from_spec(name, document)
    return [specs[name] for name in sorted(specs)]


def kernel_python(argv0: str, env: Mapping[str, str], server_python: str) -> tuple[str | None, str]:
    """The interpreter a kernelspec's argv[0] names, and ``ok``, ``not_python`` or ``not_found``.

    Like jupyter_client, ``python``, ``python3`` and ``python3.X`` mean the server's own
    interpreter.
    """
    name = os.path.basename(argv0)
    if not _PYTHON_NAME.match(name):
        return None, "not_python"
    major, minor = sys.version_info[:2]
    if argv0 in ("python", f"python{major}", f"python{major}.{minor}"):
        return server_python, "ok"
    path = argv0 if os.path.isabs(argv0) else shutil.which(argv0, path=env.get("PATH"))
    if not path or not os.access(path, os.X_OK) or os.path.isdir(path):
        return None, "not_found"
    return path, "ok"


@functools.cache
def probe_source() -> str:
    """The probe script run in each environment (:mod:`gpu_devbox.cuda.probe_script`)."""
    return tables.package_text("probe_script.py")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:400] if lines else ""


async def probe_python(python: str, *, env: Mapping[str, str], timeout: float) -> dict[str, Any]:
    """Run the probe with ``python``: its answer plus ``status``, ``error`` and ``duration``."""
    started = time.monotonic()
    result: dict[str, Any] = {"status": "error", "error": None}
    probe_env = {
        **env,
        "PYTHONIOENCODING": "utf-8",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",  # jax must not grab GPU memory to answer
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    with tempfile.TemporaryDirectory(prefix="gpu-devbox-probe-") as cwd:
        try:
            proc = await asyncio.create_subprocess_exec(
                python,
                "-c",
                probe_source(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=probe_env,
                cwd=cwd,
                start_new_session=True,  # so a timeout can kill whatever it started
            )
        except OSError as exc:
            result.update(status="not_found", error=f"cannot run {python}: {exc.strerror or exc}")
            result["duration"] = round(time.monotonic() - started, 3)
            return result
        _RUNNING.add(proc.pid)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            result.update(status="timeout", error=f"the probe did not finish in {timeout:g} s")
            result["duration"] = round(time.monotonic() - started, 3)
            return result
        except asyncio.CancelledError:
            _kill_group(proc.pid)  # the server is stopping: leave no probe behind
            await proc.wait()  # and reap it, so its transport closes with the loop open
            raise
        finally:
            _RUNNING.discard(proc.pid)
    result["duration"] = round(time.monotonic() - started, 3)
    stdout = out.decode("utf-8", "replace")
    answer = None
    for line in stdout.splitlines():
        if line.startswith(PROBE_MARKER):
            answer = line[len(PROBE_MARKER) :]
    if answer is None:
        why = _last_line(err.decode("utf-8", "replace")) or f"exit status {proc.returncode}"
        result["error"] = f"the probe failed: {why}"
        return result
    try:
        data = json.loads(answer)
    except ValueError as exc:
        result["error"] = f"the probe's answer is not JSON: {exc}"
        return result
    result.update(status="ok", error=None)
    for key in ("python_version", "torch", "cupy", "jax", "tensorflow", "cuda_runtime_wheels"):
        result[key] = data.get(key)
    return result


#: Process ids (and process groups) of the probes running now.
_RUNNING: set[int] = set()


def kill_running_probes() -> None:
    """Kill every probe still running (called when the server stops)."""
    for pid in list(_RUNNING):
        _kill_group(pid)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def gather_environments(
    kernelspecs: Sequence[KernelSpec] | None,
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    server_python: str = sys.executable,
    parallel: int = 2,
) -> list[dict[str, Any]]:
    """Probe the server's interpreter and each kernelspec's (``None``: kernelspecs skipped).

    Environments with the same interpreter and environment overrides share one probe.
    """
    base_env = dict(os.environ if env is None else env)
    limit = asyncio.Semaphore(max(1, parallel))
    probes: dict[tuple[str, tuple[tuple[str, str], ...]], asyncio.Task[dict[str, Any]]] = {}

    async def limited(python: str, probe_env: dict[str, str]) -> dict[str, Any]:
        async with limit:
            return await probe_python(python, env=probe_env, timeout=timeout)

    def schedule(python: str, overrides: Mapping[str, str]) -> asyncio.Task[dict[str, Any]]:
        key = (python, tuple(sorted(overrides.items())))
        if key not in probes:
            probes[key] = asyncio.ensure_future(limited(python, {**base_env, **overrides}))
        return probes[key]

    rows: list[tuple[dict[str, Any], asyncio.Task[dict[str, Any]] | None]] = [
        (
            {"name": "server", "kind": "server", "display_name": None, "python": server_python},
            schedule(server_python, {}),
        )
    ]
    for spec in kernelspecs or ():
        head: dict[str, Any] = {"name": f"kernel:{spec.name}", "kind": "kernelspec"}
        head.update(display_name=spec.display_name, python=spec.argv[0] if spec.argv else None)
        if not spec.argv:
            rows.append(({**head, "status": "not_python", "error": "empty argv"}, None))
            continue
        python, status = kernel_python(spec.argv[0], {**base_env, **spec.env}, server_python)
        if python is None:
            why = "argv[0] is not a Python interpreter" if status == "not_python" else "not found"
            rows.append(({**head, "status": status, "error": f"{spec.argv[0]}: {why}"}, None))
            continue
        rows.append(({**head, "python": python}, schedule(python, spec.env)))
    if kernelspecs is None:
        rows.append(
            (
                {
                    "name": "kernel:*",
                    "kind": "kernelspec",
                    "display_name": None,
                    "python": None,
                    "status": "skipped",
                    "error": "probing kernelspecs is turned off",
                },
                None,
            )
        )
    await asyncio.gather(*probes.values())
    out = []
    for head, task in rows:
        out.append({**head, **task.result()} if task is not None else head)
    return out
