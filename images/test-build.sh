#!/usr/bin/env bash
# A real build of the CPU image from images/Dockerfile, then the smoke test inside it.
#
# There is no Docker engine or registry on gpu-devbox's CI machine, so the base image comes from
# Debian's archive: debootstrap makes a trixie root filesystem, `podman import` turns it into
# localhost/gpu-devbox-debian:trixie, and images/build.sh builds the catalog's CPU image on it
# with podman (same Dockerfile, arguments and lock; only BASE_IMAGE and PYTHON_VERSION differ:
# trixie packages Python 3.13, which the universal lock covers). Then, in the built image:
# its size against the catalog's size_budget (per layer group), images/smoke_test.py --image
# (a notebook through nbclient, the Lab extension for real), the same smoke test failing once
# the Lab extension is disabled, the Kernel Gateway mode, an arbitrary UID with GID 0, the git
# sync helper, the HEALTHCHECK against the default command, the labels, and a rebuild after a
# gpu-devbox change that must reuse every layer before gpu-devbox's.
#
# Needs root (debootstrap, rootful podman) and installs podman, buildah, runc and debootstrap
# with apt-get when they are missing. Without them it prints SKIPPED and exits 0; any failure
# exits 1. Everything it stores stays in .scratch/ (git-ignored); the root filesystem and the
# pip-heavy layers are reused by the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
SCRATCH="$ROOT/.scratch/test-build"
BASE=localhost/gpu-devbox-debian:trixie
IMAGE=localhost/base-notebook:cpu
HOST_CA=/etc/ssl/certs/ca-certificates.crt

say() { printf '\n--- test-build: %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }
skip() {
  echo "test-build: SKIPPED: $*"
  exit 0
}
fail() {
  echo "test-build: FAILED: $*" >&2
  exit 1
}

# The Docker client's configuration is not this script's business (podman would read its auths).
unset DOCKER_CONFIG

# -- tools -------------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "needs root (debootstrap and rootful podman); run it as root"
missing=()
for tool in podman buildah runc debootstrap; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || skip "${missing[*]} missing and no apt-get to install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -q >/dev/null
  timeout 600 apt-get install -y -q podman buildah runc debootstrap >/dev/null ||
    skip "apt-get could not install podman, buildah, runc and debootstrap"
fi
command -v gpu-devbox >/dev/null || fail "gpu-devbox is not installed (pip install -e .)"

# Storage inside the checkout (absolute paths: podman records them); runc because crun refuses
# hybrid cgroups; ulimits within the hard limits (podman's defaults exceed them where
# CAP_SYS_RESOURCE is missing, and runc cannot raise them).
mkdir -p "$SCRATCH"
PODMAN="podman --root $SCRATCH/storage --runroot $SCRATCH/run --runtime runc"
read -ra podman <<<"$PODMAN"
at_most() { if [ "$1" = unlimited ] || [ "$1" -gt "$2" ]; then echo "$2"; else echo "$1"; fi; }
nofile=$(at_most "$(ulimit -Hn)" 1048576)
nproc=$(at_most "$(ulimit -Hu)" 32768) # podman lowers its own hard NPROC limit to 32768
LIMITS="--ulimit nofile=$nofile:$nofile --ulimit nproc=$nproc:$nproc"
read -ra limits <<<"$LIMITS"
"${podman[@]}" info >/dev/null 2>&1 || skip "podman does not work here: $("${podman[@]}" info 2>&1 | tail -1)"

# -- the base image ----------------------------------------------------------------------------
if ! "${podman[@]}" image exists "$BASE"; then
  # An earlier run's base (bookworm) is of no more use: drop it with its layers.
  "${podman[@]}" rmi -f localhost/gpu-devbox-debian:bookworm >/dev/null 2>&1 || true
  rm -f "$SCRATCH/debian-bookworm-rootfs.tar"
  rootfs_tar="$SCRATCH/debian-trixie-rootfs.tar"
  if [ ! -s "$rootfs_tar" ]; then
    say "debootstrap trixie (minbase)"
    rm -rf "$SCRATCH/rootfs"
    # This machine's own Debian mirror (debootstrap's default when it has none).
    mirror=$(apt-cache policy | awk '/ Packages$/ && $3 ~ /\/main$/ && $2 ~ /\/debian\/?$/ && !found { print $2; found = 1 }')
    timeout 600 debootstrap --variant=minbase trixie "$SCRATCH/rootfs" \
      ${mirror:+"$mirror"} >"$SCRATCH/debootstrap.log" 2>&1 ||
      fail "debootstrap failed; see $SCRATCH/debootstrap.log"
    tar -C "$SCRATCH/rootfs" -cf "$rootfs_tar.part" . && mv "$rootfs_tar.part" "$rootfs_tar"
    rm -rf "$SCRATCH/rootfs"
  fi
  say "podman import $BASE"
  "${podman[@]}" import "$rootfs_tar" "$BASE" >/dev/null
fi

# -- the build ---------------------------------------------------------------------------------
build() {
  local flags="--network host $LIMITS"
  local args="BASE_IMAGE=$BASE PYTHON_VERSION=3.13"
  if [ -f "$HOST_CA" ]; then
    # Builds reach PyPI through the host's TLS-intercepting proxy here: trust its CA bundle.
    flags="$flags --volume $HOST_CA:/etc/gpu-devbox-host-ca.pem:ro"
    args="$args PIP_CERT=/etc/gpu-devbox-host-ca.pem"
  fi
  BUILDER=podman REGISTRY=localhost PODMAN="$PODMAN" PODMAN_BUILD_FLAGS="$flags" \
    BUILD_ARGS="$args" timeout 900 images/build.sh cpu
}

say "images/build.sh cpu (podman)"
start=$(date +%s)
if ! build >"$SCRATCH/build.log" 2>&1; then
  tail -20 "$SCRATCH/build.log" >&2
  fail "the build failed; see $SCRATCH/build.log"
fi
grep -E "STEP [0-9]+/[0-9]+: (RUN|COPY)|^build.sh|^install.sh" "$SCRATCH/build.log" || true
echo "build: $(($(date +%s) - start)) s"

# -- the built image ---------------------------------------------------------------------------
say "image metadata"
"${podman[@]}" image inspect "$IMAGE" >"$SCRATCH/inspect.json"
size=$(python3 - "$SCRATCH/inspect.json" "$BASE" "$(git rev-parse HEAD 2>/dev/null || echo)" <<'PY'
import json, sys

image, base, revision = json.load(open(sys.argv[1]))[0], sys.argv[2], sys.argv[3]
config, labels = image["Config"], image["Config"].get("Labels") or {}
env = dict(item.split("=", 1) for item in config.get("Env", []))
expected = {
    "user": (config.get("User"), "1000"),
    "entrypoint": (config.get("Entrypoint"), ["tini", "-g", "--", "gpu-devbox-entrypoint"]),
    "command": (config.get("Cmd"), ["start-notebook"]),
    "exposed ports": (sorted(config.get("ExposedPorts") or {}), ["8888/tcp"]),
    "healthcheck": ((image.get("Healthcheck") or {}).get("Test"), ["CMD", "gpu-devbox-healthcheck"]),
    "base label": (labels.get("org.opencontainers.image.base.name"), base),
    "revision label": (labels.get("org.opencontainers.image.revision"), revision),
    "GPU_DEVBOX_BASE_IMAGE": (env.get("GPU_DEVBOX_BASE_IMAGE"), base),
    "NVIDIA_VISIBLE_DEVICES": (env.get("NVIDIA_VISIBLE_DEVICES"), "void"),
    "NVIDIA_DRIVER_CAPABILITIES": (env.get("NVIDIA_DRIVER_CAPABILITIES"), "compute,utility"),
}
for label in ("source", "version", "created"):
    key = f"org.opencontainers.image.{label}"
    expected[f"{label} label"] = (labels.get(key), labels.get(key) or "(set)")
bad = [f"{what} is {got!r}, expected {want!r}" for what, (got, want) in expected.items() if got != want]
for what, (got, _) in expected.items():
    print(f"{'ok' if not any(b.startswith(what + ' ') for b in bad) else 'BAD'}: {what} = {got}", file=sys.stderr)
if bad:
    sys.exit("; ".join(bad))
print(image["Size"])
PY
) || fail "the image's metadata is wrong"
echo "image size: $size bytes ($((size / 1000 / 1000)) MB)"

say "size per layer group, against the catalog's budget"
rm -rf "$SCRATCH/oci"
"${podman[@]}" save --format oci-dir --compress -o "$SCRATCH/oci" "$IMAGE" >/dev/null ||
  fail "podman save failed"
gpu-devbox images size cpu --oci "$SCRATCH/oci" | tee "$SCRATCH/size.md" ||
  fail "the CPU image is over its size budget"
rm -rf "$SCRATCH/oci"

run() { "${podman[@]}" run --rm --network none --no-healthcheck "${limits[@]}" "$@"; }
SMOKE=(-v "$ROOT/images/smoke_test.py:/tmp/smoke_test.py:ro")

say "smoke test inside the image"
run "${SMOKE[@]}" "$IMAGE" python /tmp/smoke_test.py --image ||
  fail "the smoke test failed in the image"

say "the smoke test fails when the Lab extension is disabled"
# shellcheck disable=SC2016 # expanded in the container
if out=$(run "${SMOKE[@]}" "$IMAGE" bash -c '
  jupyter labextension disable --level=user gpu-devbox >/dev/null 2>&1
  python /tmp/smoke_test.py --image' 2>&1); then
  fail "the smoke test passed with the Lab extension disabled"
fi
grep -E "^FAIL  lab extension: gpu-devbox is not enabled and OK: gpu-devbox v.* disabled" <<<"$out" ||
  fail "the smoke test failed, but not on the disabled Lab extension: $(tail -3 <<<"$out")"

say "Kernel Gateway mode (GPU_DEVBOX_JUPYTER_CMD=kernelgateway)"
gateway="gpu-devbox-test-gateway-$$"
trap '"${podman[@]}" rm -f "$gateway" >/dev/null 2>&1 || true' EXIT
"${podman[@]}" run -d --name "$gateway" --network none --no-healthcheck "${limits[@]}" "${SMOKE[@]}" \
  -e GPU_DEVBOX_JUPYTER_CMD=kernelgateway -e KG_AUTH_TOKEN=test-build-token "$IMAGE" >/dev/null
"${podman[@]}" exec "$gateway" python /tmp/smoke_test.py --gateway http://127.0.0.1:8888 ||
  fail "the Kernel Gateway did not run code; logs: $("${podman[@]}" logs "$gateway" 2>&1 | tail -5)"
"${podman[@]}" rm -f "$gateway" >/dev/null

say "the git sync helper (gpu-devbox-sync, nbgitpuller) in the image"
# shellcheck disable=SC2016 # expanded in the container
run "$IMAGE" bash -c '
  set -e
  git init -q -b main /tmp/upstream
  git -C /tmp/upstream -c user.name=t -c user.email=t@t commit -q --allow-empty -m "first"
  echo "print(1)" >/tmp/upstream/a.py
  git -C /tmp/upstream add a.py
  git -C /tmp/upstream -c user.name=t -c user.email=t@t commit -q -m "a notebook"
  gpu-devbox-sync file:///tmp/upstream course
  test -f "$HOME/course/a.py"' || fail "gpu-devbox-sync did not clone a repository in the image"

say "an arbitrary UID with GID 0 (OpenShift)"
# --passwd=false: podman would add the passwd entry itself; Docker and Kubernetes do not.
# shellcheck disable=SC2016 # expanded in the container
run --user 12345:0 --passwd=false "$IMAGE" bash -c '
  set -e
  [ "$(whoami)" = jovyan ] || { echo "whoami: $(whoami 2>&1)"; exit 1; }
  echo "whoami: $(whoami) ($(id)), HOME=$HOME"
  touch "$HOME/written-by-12345" && echo "home is writable"
  touch "$VIRTUAL_ENV/lib/written-by-12345" && echo "the venv is writable"
' || fail "an arbitrary UID cannot use the image"

say "HEALTHCHECK against the default command (JupyterLab)"
name="gpu-devbox-test-build-$$"
"${podman[@]}" run -d --name "$name" --network none --no-healthcheck "${limits[@]}" "$IMAGE" >/dev/null
trap '"${podman[@]}" rm -f "$name" >/dev/null 2>&1 || true' EXIT
healthy=""
for _ in $(seq 1 60); do
  if out=$("${podman[@]}" exec "$name" gpu-devbox-healthcheck 2>&1); then
    healthy="$out"
    break
  fi
  sleep 1
done
[ -n "$healthy" ] || fail "the healthcheck never passed: $out; logs: $("${podman[@]}" logs "$name" 2>&1 | tail -5)"
echo "ok: $healthy"
"${podman[@]}" exec "$name" cat /proc/1/cmdline | tr '\0' ' ' | grep -q "^tini -g -- " ||
  fail "PID 1 of the running container is not tini"
echo "ok: PID 1 is tini"
"${podman[@]}" rm -f "$name" >/dev/null

say "a gpu-devbox change rebuilds only gpu-devbox's layers"
# A wheel with other bytes (other file dates), as any change to gpu-devbox makes.
export SOURCE_DATE_EPOCH=$(($(date +%s) - 86400))
build >"$SCRATCH/rebuild.log" 2>&1 || fail "the rebuild failed; see $SCRATCH/rebuild.log"
unset SOURCE_DATE_EPOCH
python3 - "$SCRATCH/rebuild.log" <<'PY' || fail "the rebuild did not reuse the layers before gpu-devbox's"
import re, sys

steps, current = [], None
for line in open(sys.argv[1]):
    match = re.search(r"STEP \d+/\d+: (.*)", line)
    if match:
        current = [match.group(1).strip(), False]
        steps.append(current)
    elif current is not None and "Using cache" in line:
        current[1] = True
first = next((i for i, (text, _) in enumerate(steps) if "gpu_devbox-*.whl" in text), None)
if first is None:
    sys.exit("no COPY of the gpu-devbox wheel in the build log")
rebuilt_early = [text for text, cached in steps[:first] if not cached and not text.startswith(("FROM", "ARG"))]
if rebuilt_early:
    sys.exit(f"rebuilt before gpu-devbox's layer: {rebuilt_early}")
if steps[first][1]:
    sys.exit("the gpu-devbox wheel layer came from the cache: the change did not reach the image")
print(f"ok: {first} steps before gpu-devbox's came from the cache; its layers were rebuilt")
PY

# Keep the storage from growing run after run: drop image branches nothing is built on any more
# (the layers under the current image stay, as the next run's cache).
"${podman[@]}" image prune -f >/dev/null || true
echo "test-build: PASSED"
