#!/usr/bin/env bash
# Installs the pieces of a gpu-devbox notebook image. images/Dockerfile runs each step in its own
# layer; images/build.sh, images/test-build.sh and CI run the `wheel` step on the host first.
#
#   install.sh wheel OUTDIR          (host) build gpu-devbox's wheel, with its Lab extension, from
#                                    this checkout into OUTDIR
#   install.sh system                (root) OS packages, the jovyan user, writable directories
#   install.sh python LOCK           (jovyan) the venv with the lock's base section: JupyterLab,
#                                    jupyterhub, gpu-devbox's requirements, the scientific stack
#   install.sh flavors LOCK "base pytorch ..." [INDEX]
#                                    (jovyan) every other flavor's section of the lock, in order
#                                    (PyTorch from INDEX, .../whl/cu130); a missing one fails
#   install.sh gpu-devbox DIR        (jovyan) the wheel in DIR (no dependencies: the lock has
#                                    them), then check the server and Lab extensions are on
#   install.sh fix-permissions DIR.. (root) make DIRs writable by the owner and by group 0
#
# Environment (set by the Dockerfile): NB_USER, NB_UID, NB_GID, HOME, VIRTUAL_ENV,
# PYTHON_VERSION; PIP_CERT (optional) a CA bundle for pip behind an intercepting proxy;
# for `system`: APT_PACKAGES (the flavors' OS packages), WITH_ZSH=1 (zsh), WITH_NSYS=1 (Nsight
# Systems CLI; CUDA images on amd64 only), TARGETARCH (amd64, arm64; set by BuildKit).
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
  # The images serve the GPU panel: a wheel without the Lab extension (built where Node.js is
  # missing) would make an image whose smoke test fails after a long build. Say so now.
  python3 - "$out" <<'PY'
import pathlib, sys, zipfile

out = pathlib.Path(sys.argv[1])
wheels = sorted(out.glob("gpu_devbox-*.whl"))
if len(wheels) != 1:
    sys.exit(f"install.sh wheel: expected one gpu-devbox wheel in {out}, found {len(wheels)}")
with zipfile.ZipFile(wheels[0]) as wheel:
    names = wheel.namelist()
if not any(n.endswith("/share/jupyter/labextensions/gpu-devbox/package.json") for n in names):
    sys.exit(f"install.sh wheel: {wheels[0].name} carries no Lab extension; build it where "
             "Node.js is installed (pip builds labextension/ with jlpm)")
print(f"{wheels[0].name}: with the Lab extension", file=sys.stderr)
PY
}

# The build options, checked before anything is installed: a refusal costs no build time.
check_options() {
  local arch="${TARGETARCH:-$(dpkg --print-architecture 2>/dev/null || uname -m)}"
  if [ "${WITH_NSYS:-0}" = 1 ]; then
    [ "$arch" = amd64 ] || die "WITH_NSYS=1: the Nsight Systems CLI option is amd64 only; build linux/$arch without it"
    [ -n "${CUDA_VERSION:-}" ] || die "WITH_NSYS=1: Nsight Systems needs a CUDA image (this base sets no CUDA_VERSION)"
  fi
  case "${WITH_ZSH:-0}" in 0 | 1) ;; *) die "WITH_ZSH must be 0 or 1, not '${WITH_ZSH}'" ;; esac
}

step_system() {
  check_options
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
  local extra=()
  read -ra extra <<<"${APT_PACKAGES:-}"
  [ "${WITH_ZSH:-0}" != 1 ] || extra+=(zsh)
  if [ "${WITH_NSYS:-0}" = 1 ]; then
    # NVIDIA's CUDA repository is configured in nvidia/cuda images: its package for this line.
    extra+=("cuda-nsight-systems-$(cut -d. -f1 <<<"$CUDA_VERSION")-$(cut -d. -f2 <<<"$CUDA_VERSION")")
  fi
  apt-get install -y -q --no-install-recommends \
    ca-certificates tini "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-venv" "${extra[@]}"
  if [ "${WITH_NSYS:-0}" = 1 ]; then
    nsys_bin=$(find /opt/nvidia /usr/local/cuda* -path '*/bin/nsys' -type f 2>/dev/null | head -1)
    [ -n "$nsys_bin" ] || die "WITH_NSYS=1: the package installed no nsys"
    ln -sf "$nsys_bin" /usr/local/bin/nsys
  fi
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

# The requirement lines of one section of a lock (images/locks/IMAGE.txt), on stdout.
lock_section() {
  local lock="$1" name="$2"
  awk -v want="# [section $name]" '
    /^# \[section / { on = (index($0, want) == 1); next }
    on && !/^#/ && NF { print }' "$lock"
}

pip_install_lock() {
  local lock="$1" name="$2" index="${3:-}" part
  part="$(mktemp)"
  lock_section "$lock" "$name" >"$part"
  [ -s "$part" ] || die "$lock has no '$name' section: run 'gpu-devbox images lock' for this image"
  local argv=(--quiet --require-hashes --no-deps --only-binary=:all: --requirement "$part")
  [ -z "$index" ] || argv+=(--extra-index-url "$index")
  "$VIRTUAL_ENV/bin/python" -m pip install "${argv[@]}"
  rm -f "$part"
}

step_python() {
  local lock="${1:-}"
  need VIRTUAL_ENV
  need PYTHON_VERSION
  [ -f "$lock" ] || die "usage: install.sh python LOCK (no file ${lock:-given})"
  umask 0002
  "python${PYTHON_VERSION}" -m venv "$VIRTUAL_ENV"
  fix_permissions "$VIRTUAL_ENV" # venv writes its activate scripts without group write
  "$VIRTUAL_ENV/bin/python" -m pip install --quiet --upgrade pip
  pip_install_lock "$lock" base
  "$VIRTUAL_ENV/bin/python" -m pip check
}

step_flavors() {
  local lock="${1:-}" flavors="${2:-}" index="${3:-}" flavor
  if [ ! -f "$lock" ] || [ -z "$flavors" ]; then die 'usage: install.sh flavors LOCK "base pytorch ..." [INDEX]'; fi
  need VIRTUAL_ENV
  umask 0002
  for flavor in $flavors; do
    [ "$flavor" != base ] || continue
    pip_install_lock "$lock" "$flavor" "$index"
  done
  "$VIRTUAL_ENV/bin/python" -m pip check
  if [[ " $flavors " == *" pytorch "* ]]; then
    "$VIRTUAL_ENV/bin/python" -c 'import torch, torchvision, torchaudio; print("torch", torch.__version__, "CUDA", torch.version.cuda, "torchvision", torchvision.__version__, "torchaudio", torchaudio.__version__)'
  fi
}

step_gpu_devbox() {
  local dir="${1:-}" wheels
  need VIRTUAL_ENV
  [ -d "$dir" ] || die "usage: install.sh gpu-devbox DIR (no directory ${dir:-given})"
  wheels=("$dir"/gpu_devbox-*.whl)
  [ -f "${wheels[0]}" ] || die "no gpu_devbox-*.whl in $dir: run 'images/install.sh wheel images/wheels' on the host first"
  [ "${#wheels[@]}" = 1 ] || die "more than one gpu-devbox wheel in $dir: ${wheels[*]}"
  umask 0002
  # --no-deps: the lock installed its requirements; pip check proves none is missing.
  "$VIRTUAL_ENV/bin/python" -m pip install --quiet --no-deps "${wheels[0]}"
  "$VIRTUAL_ENV/bin/python" -m pip check
  "$VIRTUAL_ENV/bin/jupyter" server extension list 2>&1 | grep -E "gpu_devbox .*OK" >/dev/null ||
    die "the gpu_devbox server extension is not enabled after the install"
  # (jupyter colours "enabled" and "OK" even into a pipe: strip the escapes first)
  "$VIRTUAL_ENV/bin/jupyter" labextension list 2>&1 | sed 's/\x1b\[[0-9;]*m//g' |
    grep -E "^[[:space:]]+gpu-devbox v[^ ]+ enabled OK" >/dev/null ||
    die "the gpu-devbox Lab extension (the GPU panel) is not installed and enabled: build the wheel where Node.js is installed"
}

STEP="${1:-}"
[ $# -gt 0 ] && shift
case "$STEP" in
  wheel) step_wheel "$@" ;;
  system) step_system ;;
  python) step_python "$@" ;;
  flavors) step_flavors "$@" ;;
  gpu-devbox) step_gpu_devbox "$@" ;;
  fix-permissions) fix_permissions "$@" ;;
  *)
    unknown="$STEP"
    STEP=usage
    die "unknown step '${unknown}'; steps: wheel, system, python, flavors, gpu-devbox, fix-permissions"
    ;;
esac
