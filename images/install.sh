#!/usr/bin/env bash
# Installs the pieces of a gpu-devbox notebook image. images/Dockerfile runs each step in its own
# layer; images/build.sh, images/test-build.sh and CI run the `wheel` step on the host first.
#
#   install.sh wheel OUTDIR          (host) build gpu-devbox's wheel from this checkout into OUTDIR,
#                                    with OUTDIR/requirements.txt: what the image needs besides it
#   install.sh system                (root) OS packages, the jovyan user, writable directories
#   install.sh python REQUIREMENTS   (jovyan) the venv with JupyterLab, jupyterhub and the deps
#   install.sh torch INDEX [VERSION] (jovyan) PyTorch from a wheel index (.../whl/cu130)
#   install.sh gpu-devbox DIR        (jovyan) the wheel in DIR, then check the extension is on
#   install.sh fix-permissions DIR.. (root) make DIRs writable by the owner and by group 0
#
# Environment (set by the Dockerfile): NB_USER, NB_UID, NB_GID, HOME, VIRTUAL_ENV,
# PYTHON_VERSION; PIP_CERT (optional) a CA bundle for pip behind an intercepting proxy.
set -euo pipefail

say() { printf 'install.sh %s: %s\n' "$STEP" "$*" >&2; }
die() {
  say "error: $*"
  exit 2
}
need() { [ -n "${!1:-}" ] || die "the environment variable $1 is not set"; }

# pip trusts PIP_CERT when it names a file; an empty value would break it.
if [ -z "${PIP_CERT:-}" ]; then unset PIP_CERT; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore

# Group 0 owns what users write (arbitrary UIDs run with GID 0, e.g. on OpenShift); the group
# gets the owner's rights and new files inherit the group (setgid directories). Only files that
# need a change are touched, so lower layers are not copied up.
fix_permissions() {
  local dir
  for dir in "$@"; do
    [ -d "$dir" ] || die "fix-permissions: $dir is not a directory"
    find "$dir" ! -group 0 -exec chgrp -h 0 {} +
    find "$dir" \( -type f -o -type d \) ! -perm -g+rw -exec chmod g+rw {} +
    find "$dir" -type f -perm -u+x ! -perm -g+x -exec chmod g+x {} +
    find "$dir" -type d ! -perm -g+xs -exec chmod g+xs {} +
  done
}

step_wheel() {
  local out="${1:-}" root
  [ -n "$out" ] || die "usage: install.sh wheel OUTDIR"
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  mkdir -p "$out"
  rm -f "$out"/gpu_devbox-*.whl "$out/requirements.txt"
  python3 -m pip wheel --quiet --no-deps --wheel-dir "$out" "$root"
  # The wheel's runtime requirements, plus the `lab` extra and jupyterhub (for
  # jupyterhub-singleuser) from the `hub` extra; the spawner's Kubernetes packages stay out.
  python3 - "$out" <<'PY'
import email.parser, pathlib, re, sys, zipfile

out = pathlib.Path(sys.argv[1])
wheels = sorted(out.glob("gpu_devbox-*.whl"))
if len(wheels) != 1:
    sys.exit(f"install.sh wheel: expected one gpu-devbox wheel in {out}, found {len(wheels)}")
with zipfile.ZipFile(wheels[0]) as wheel:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = email.parser.Parser().parsestr(wheel.read(name).decode())
lines = []
for requirement in metadata.get_all("Requires-Dist") or []:
    spec, _, marker = requirement.partition(";")
    extra = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", marker)
    if extra is None:
        lines.append(requirement.strip())
    elif extra.group(1) == "lab" or (
        extra.group(1) == "hub" and re.match(r"jupyterhub\b(?!-)", spec.strip())
    ):
        lines.append(spec.strip())
(out / "requirements.txt").write_text("".join(f"{line}\n" for line in lines))
print(f"{wheels[0].name}: {len(lines)} requirements", file=sys.stderr)
PY
}

step_system() {
  need NB_USER
  need NB_UID
  need NB_GID
  need HOME
  need VIRTUAL_ENV
  need PYTHON_VERSION
  [ "$(id -u)" = 0 ] || die "run this step as root"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  if ! apt-cache show "python${PYTHON_VERSION}-venv" >/dev/null 2>&1; then
    # shellcheck source=/dev/null
    . /etc/os-release
    die "Python ${PYTHON_VERSION} is not packaged by ${PRETTY_NAME:-this base image}; set the catalog's build.python to its Python"
  fi
  apt-get install -y -q --no-install-recommends \
    ca-certificates tini "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-venv"
  apt-get clean
  rm -rf /var/lib/apt/lists/*
  # Ubuntu 24.04 images ship a user `ubuntu` with UID 1000: jovyan takes the UID.
  if getent passwd "$NB_UID" >/dev/null; then
    userdel --remove "$(getent passwd "$NB_UID" | cut -d: -f1)" 2>/dev/null || true
  fi
  useradd --no-log-init --create-home --home-dir "$HOME" --shell /bin/bash \
    --uid "$NB_UID" --gid "$NB_GID" "$NB_USER"
  mkdir -p "$VIRTUAL_ENV" "$HOME/work"
  chown -R "$NB_UID:0" "$VIRTUAL_ENV" "$HOME"
  fix_permissions "$VIRTUAL_ENV" "$HOME"
  # An arbitrary UID gets a passwd entry at start (gpu-devbox-entrypoint).
  chmod g+w /etc/passwd
}

step_python() {
  local requirements="${1:-}"
  need VIRTUAL_ENV
  need PYTHON_VERSION
  [ -f "$requirements" ] || die "usage: install.sh python REQUIREMENTS (no file ${requirements:-given})"
  umask 0002
  "python${PYTHON_VERSION}" -m venv "$VIRTUAL_ENV"
  fix_permissions "$VIRTUAL_ENV" # venv writes its activate scripts without group write
  "$VIRTUAL_ENV/bin/python" -m pip install --quiet --upgrade pip
  "$VIRTUAL_ENV/bin/python" -m pip install --quiet --requirement "$requirements"
  "$VIRTUAL_ENV/bin/python" -m pip check
}

step_torch() {
  local index="${1:-}" version="${2:-}" spec=torch
  [ -n "$index" ] || die "usage: install.sh torch INDEX [VERSION]"
  need VIRTUAL_ENV
  [ -z "$version" ] || spec="torch==${version}.*"
  umask 0002
  "$VIRTUAL_ENV/bin/python" -m pip install --quiet --index-url "$index" "$spec"
  "$VIRTUAL_ENV/bin/python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'
}

step_gpu_devbox() {
  local dir="${1:-}" wheels
  need VIRTUAL_ENV
  [ -d "$dir" ] || die "usage: install.sh gpu-devbox DIR (no directory ${dir:-given})"
  wheels=("$dir"/gpu_devbox-*.whl)
  [ -f "${wheels[0]}" ] || die "no gpu_devbox-*.whl in $dir: run 'images/install.sh wheel images/wheels' on the host first"
  [ "${#wheels[@]}" = 1 ] || die "more than one gpu-devbox wheel in $dir: ${wheels[*]}"
  umask 0002
  "$VIRTUAL_ENV/bin/python" -m pip install --quiet "${wheels[0]}"
  "$VIRTUAL_ENV/bin/jupyter" server extension list 2>&1 | grep -E "gpu_devbox .*OK" >/dev/null ||
    die "the gpu_devbox server extension is not enabled after the install"
}

STEP="${1:-}"
[ $# -gt 0 ] && shift
case "$STEP" in
  wheel) step_wheel "$@" ;;
  system) step_system ;;
  python) step_python "$@" ;;
  torch) step_torch "$@" ;;
  gpu-devbox) step_gpu_devbox "$@" ;;
  fix-permissions) fix_permissions "$@" ;;
  *)
    unknown="$STEP"
    STEP=usage
    die "unknown step '${unknown}'; steps: wheel, system, python, torch, gpu-devbox, fix-permissions"
    ;;
esac
