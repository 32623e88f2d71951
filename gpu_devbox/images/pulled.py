"""What a base image says about itself: NVIDIA's deprecation notice, read from the image.

The audit's table knows the end-of-life dates NVIDIA had published when it was written. NVIDIA
marks an image end-of-life in the image too: its ``nvidia/cuda`` Dockerfiles for end-of-life
tags set ``NVIDIA_CUDA_END_OF_LIFE``, and the image's entrypoint
(``/opt/nvidia/nvidia_entrypoint.sh``, its ``entrypoint.d/90-deprecated-image.sh``) then prints
a *DEPRECATION NOTICE* at every start. ``gpu-devbox images audit --pull`` pulls each base (when
it is not there already), reads its environment and starts it once with its own entrypoint, so
a notice the table does not know yet fails the audit all the same.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess

#: How NVIDIA's entrypoint words the notice (90-deprecated-image.sh).
NOTICE = re.compile(r"DEPRECATION NOTICE|THIS IMAGE IS DEPRECATED", re.IGNORECASE)
#: The variable NVIDIA's end-of-life Dockerfiles set.
EOL_VARIABLE = "NVIDIA_CUDA_END_OF_LIFE"
PULL_TIMEOUT = 1800
RUN_TIMEOUT = 120


@dataclasses.dataclass(frozen=True)
class Inspection:
    """What pulling and starting one base image showed."""

    image: str
    #: Whether it had to be pulled (``False``: it was there already).
    pulled: bool
    #: The value of ``NVIDIA_CUDA_END_OF_LIFE`` in the image's environment, if set.
    eol_variable: str | None
    #: The lines of the notice the image printed at start, if any.
    notice: tuple[str, ...]
    #: Why the image could not be inspected, if it could not.
    error: str | None = None

    @property
    def deprecated(self) -> bool:
        """Whether the image itself says it is deprecated."""
        return bool(self.notice) or self.eol_variable is not None

    def as_dict(self) -> dict[str, object]:
        """JSON form."""
        out = dataclasses.asdict(self)
        out["notice"] = list(self.notice)
        out["deprecated"] = self.deprecated
        return out


def notice_lines(output: str) -> tuple[str, ...]:
    """The deprecation notice in what an image printed at start: from its first line to the
    policy link after it (the banner's frame of asterisks left out)."""
    lines = [line.strip() for line in output.splitlines()]
    start = next((i for i, line in enumerate(lines) if NOTICE.search(line)), None)
    if start is None:
        return ()
    out = []
    for line in lines[start : start + 6]:
        if not line.strip("* "):
            continue
        out.append(line.strip("* ").strip())
        if "http" in line:
            break
    return tuple(out)


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {timeout:.0f} s")


def _why(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {result.returncode}"


def inspect(runtime: list[str], image: str, run_args: list[str] | None = None) -> Inspection:
    """Pull ``image`` unless it is there, read its environment, start it once with its own
    entrypoint (command ``true``, no network) and look for the notice in what it printed."""
    found = _run([*runtime, "image", "inspect", image], 60)
    pulled = False
    if found.returncode != 0:
        pull = _run([*runtime, "pull", image], PULL_TIMEOUT)
        if pull.returncode != 0:
            return Inspection(image, False, None, (), f"cannot pull it: {_why(pull)}")
        pulled = True
        found = _run([*runtime, "image", "inspect", image], 60)
        if found.returncode != 0:
            return Inspection(image, pulled, None, (), f"cannot inspect it: {_why(found)}")
    try:
        document = json.loads(found.stdout)
        config = (document[0] if isinstance(document, list) else document).get("Config") or {}
        env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    except (ValueError, AttributeError, IndexError, KeyError):
        return Inspection(image, pulled, None, (), "its inspect output is not an image's JSON")
    started = _run(
        [*runtime, "run", "--rm", "--network", "none", *(run_args or []), image, "true"],
        RUN_TIMEOUT,
    )
    printed = started.stdout + started.stderr
    notice = notice_lines(printed)
    if started.returncode != 0 and not notice:
        return Inspection(
            image, pulled, env.get(EOL_VARIABLE), (), f"it did not start: {_why(started)}"
        )
    return Inspection(image, pulled, env.get(EOL_VARIABLE), notice)
