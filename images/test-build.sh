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
# TEST_BUILD_PLATFORM=linux/arm64 builds the CPU image for arm64 instead, through QEMU
# (qemu-user-static, registered with binfmt_misc; installed and registered when missing), and
# runs the smoke test in it under emulation: much slower, so not part of ./run-tests.
#
# Needs root (debootstrap, rootful podman) and installs podman, buildah, runc and debootstrap
# with apt-get when they are missing. Without them it prints SKIPPED and exits 0; any failure
# exits 1. Everything it stores stays in .scratch/ (git-ignored); the root filesystem and the
# pip-heavy layers are reused by the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
SCRATCH="$ROOT/.scratch/test-build"
PLATFORM="${TEST_BUILD_PLATFORM:-}"
case "$PLATFORM" in
  "") ARCH="" ;;
  linux/amd64 | linux/arm64) ARCH="${PLATFORM#linux/}" ;;
  *) echo "test-build: TEST_BUILD_PLATFORM must be linux/amd64 or linux/arm64" >&2; exit 2 ;;
esac
[ "$ARCH" != "$(dpkg --print-architecture 2>/dev/null)" ] || { PLATFORM=""; ARCH=""; }
BASE=localhost/gpu-devbox-debian:trixie${ARCH:+-$ARCH}
REGISTRY=localhost${ARCH:+/$ARCH}
IMAGE=$REGISTRY/base-notebook:cpu
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
# Working containers an interrupted build left behind hold their layers: remove them.
buildah --root "$SCRATCH/storage" --runroot "$SCRATCH/run" rm --all >/dev/null 2>&1 || true

# -- another architecture: QEMU through binfmt_misc ----------------------------------------------
if [ -n "$ARCH" ]; then
  binfmt=/proc/sys/fs/binfmt_misc
  qemu="qemu-aarch64"
  if [ ! -x /usr/bin/$qemu-static ]; then
    say "installing qemu-user-static"
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q qemu-user-static >/dev/null ||
      skip "apt-get could not install qemu-user-static"
  fi
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null ||
    skip "binfmt_misc cannot be mounted here: no foreign binaries can run"
  # F (fix binary): the kernel opens QEMU now, so it runs inside containers' mount namespaces.
  if ! grep -q "^flags: .*F" "$binfmt/$qemu" 2>/dev/null; then
    [ ! -e "$binfmt/$qemu" ] || echo -1 >"$binfmt/$qemu"
    sed -e 's/:[A-Z]*$/:FP/' -e "s|:/[^:]*:FP$|:/usr/bin/$qemu-static:FP|" \
      "/usr/lib/binfmt.d/$qemu.conf" >"$binfmt/register" ||
      skip "binfmt_misc refused the $qemu handler"
  fi
  echo "QEMU for $PLATFORM: $(head -1 "$binfmt/$qemu"), $(grep ^flags "$binfmt/$qemu")"
fi

# -- the base image ----------------------------------------------------------------------------
if ! "${podman[@]}" image exists "$BASE"; then
  # An earlier run's base (bookworm) is of no more use: drop it with its layers.
  "${podman[@]}" rmi -f localhost/gpu-devbox-debian:bookworm >/dev/null 2>&1 || true
  rm -f "$SCRATCH/debian-bookworm-rootfs.tar"
  rootfs_tar="$SCRATCH/debian-trixie${ARCH:+-$ARCH}-rootfs.tar"
  if [ ! -s "$rootfs_tar" ]; then
    say "debootstrap trixie (minbase${ARCH:+, $ARCH})"
    rm -rf "$SCRATCH/rootfs"
    # This machine's own Debian mirror (debootstrap's default when it has none).
    mirror=$(apt-cache policy | awk '/ Packages$/ && $3 ~ /\/main$/ && $2 ~ /\/debian\/?$/ && !found { print $2; found = 1 }')
    timeout 1800 debootstrap --variant=minbase ${ARCH:+--arch="$ARCH"} trixie "$SCRATCH/rootfs" \
      ${mirror:+"$mirror"} >"$SCRATCH/debootstrap.log" 2>&1 ||
      fail "debootstrap failed; see $SCRATCH/debootstrap.log"
    tar -C "$SCRATCH/rootfs" -cf "$rootfs_tar.part" . && mv "$rootfs_tar.part" "$rootfs_tar"
    rm -rf "$SCRATCH/rootfs"
  fi
  say "podman import $BASE"
  "${podman[@]}" import ${ARCH:+--arch "$ARCH"} "$rootfs_tar" "$BASE" >/dev/null
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
  BUILDER=podman REGISTRY="$REGISTRY" PODMAN="$PODMAN" PODMAN_BUILD_FLAGS="$flags" \
    BUILD_ARGS="$args" PLATFORM="$PLATFORM" timeout "${BUILD_TIMEOUT:-900}" images/build.sh cpu
}

# The commit the build labels the image with (later commits do not change what was built).
REVISION="$(git rev-parse HEAD 2>/dev/null || true)"

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
size=$(python3 - "$SCRATCH/inspect.json" "$BASE" "$REVISION" \
  "${ARCH:-$(dpkg --print-architecture)}" <<'PY'
import json, sys

image, base, revision, arch = json.load(open(sys.argv[1]))[0], *sys.argv[2:5]
config, labels = image["Config"], image["Config"].get("Labels") or {}
env = dict(item.split("=", 1) for item in config.get("Env", []))
expected = {
    "architecture": (image.get("Architecture"), arch),
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
"${podman[@]}" save --format docker-dir --compress -o "$SCRATCH/oci" "$IMAGE" >/dev/null ||
  fail "podman save failed"
gpu-devbox images size cpu --oci "$SCRATCH/oci" | tee "$SCRATCH/size.md" ||
  fail "the CPU image is over its size budget"
rm -rf "$SCRATCH/oci"

run() { "${podman[@]}" run --rm --network none --no-healthcheck "${limits[@]}" "$@"; }
SMOKE=(-v "$ROOT/images/smoke_test.py:/tmp/smoke_test.py:ro")
# Emulated, everything takes about ten times as long: the smoke test's time limits follow.
[ -z "$ARCH" ] || SMOKE+=(-e GPU_DEVBOX_SMOKE_SLOW=10)

say "smoke test inside the image"
run "${SMOKE[@]}" "$IMAGE" python /tmp/smoke_test.py --image ||
  fail "the smoke test failed in the image"

if [ -n "$ARCH" ]; then
  # The rest exercises the same files on any architecture; emulated, it would take long.
  "${podman[@]}" images --format '{{.Repository}}:{{.Tag}}' | grep "^$REGISTRY/base-notebook:" |
    xargs -r "${podman[@]}" rmi -f >/dev/null 2>&1 || true
  for _ in 1 2 3; do "${podman[@]}" image prune -f >/dev/null || true; done
  echo "test-build: PASSED for $PLATFORM (built, metadata, size budget, smoke test under QEMU)"
  exit 0
fi

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

say "audit --pull: a base image printing NVIDIA's deprecation notice fails the audit"
# Two stand-ins for an nvidia/cuda base, built here: each has an entrypoint that runs its
# entrypoint.d scripts, as NVIDIA's does; one is marked end-of-life and prints the notice. The
# table says their release is supported (a base of the shipped catalog, judged on the table's own
# date), so only the image itself can fail the audit.
read -r tag line table_day < <(python3 - <<'PY'
import datetime
from gpu_devbox.catalog import default_catalog
from gpu_devbox.cuda import tables
from gpu_devbox.images import audit
day = datetime.date.fromisoformat(tables.load("cuda_containers").as_of)
base = next(s for s in audit.audit(default_catalog(), day) if s.state == "supported")
print(base.base.split(":", 1)[1], ".".join(base.release.split(".")[:2]), day)
PY
)
notice="$SCRATCH/notice"
rm -rf "$notice" && mkdir -p "$notice"
cat >"$notice/nvidia_entrypoint.sh" <<'SH'
#!/bin/sh
for script in /opt/nvidia/entrypoint.d/*.sh; do . "$script"; done
exec "$@"
SH
cat >"$notice/90-deprecated-image.sh" <<'SH'
if [ -n "${NVIDIA_CUDA_END_OF_LIFE:-}" ]; then
  echo "*************************"
  echo "** DEPRECATION NOTICE! **"
  echo "*************************"
  echo "THIS IMAGE IS DEPRECATED and is scheduled for DELETION."
  echo "    https://gitlab.com/nvidia/container-images/cuda/blob/master/doc/support-policy.md"
fi
SH
chmod +x "$notice/nvidia_entrypoint.sh"
for kind in eol supported; do
  {
    echo "FROM $BASE"
    echo "COPY nvidia_entrypoint.sh /opt/nvidia/nvidia_entrypoint.sh"
    echo "COPY 90-deprecated-image.sh /opt/nvidia/entrypoint.d/90-deprecated-image.sh"
    [ "$kind" = supported ] || echo "ENV NVIDIA_CUDA_END_OF_LIFE=1"
    echo 'ENTRYPOINT ["/opt/nvidia/nvidia_entrypoint.sh"]'
  } >"$notice/Containerfile.$kind"
  "${podman[@]}" build -q --file "$notice/Containerfile.$kind" \
    --tag "localhost/cuda-$kind:$tag" "$notice" >/dev/null ||
    fail "could not build the $kind stand-in base"
  sed -e "s|IMAGE|localhost/cuda-$kind:$tag|" -e "s|LINE|$line|g" >"$notice/catalog-$kind.yaml" <<'YAML'
images:
  - {name: gpu, reference: "localhost/base-notebook:cuda-LINE", cuda: "LINE", build: true}
profiles:
  - {slug: gpu, display_name: GPU, gpu: {count: 1}, images: [gpu]}
build:
  python: "3.12"
  bases: [{cuda: "LINE", image: "IMAGE"}]
YAML
done
audit() {
  gpu-devbox images audit --pull --runtime "$PODMAN" --today "$table_day" \
    --run-arg="--ulimit=nofile=$nofile:$nofile" --run-arg="--ulimit=nproc=$nproc:$nproc" \
    --catalog "$notice/catalog-$1.yaml"
}
if out=$(audit eol 2>&1); then fail "the audit passed a base that prints the notice: $out"; fi
echo "$out"
grep -q "prints NVIDIA's notice: DEPRECATION NOTICE!" <<<"$out" || fail "the notice was not reported"
out=$(audit supported 2>&1) || fail "the audit failed a base without a notice: $out"
grep -q "prints no deprecation notice" <<<"$out" || fail "the clean base was not inspected: $out"
echo "ok: the clean stand-in passes"
"${podman[@]}" rmi -f "localhost/cuda-eol:$tag" "localhost/cuda-supported:$tag" >/dev/null 2>&1 || true

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

# Keep the storage from growing run after run: untag the builds of earlier commits (cpu-<sha7>)
# and drop the image branches nothing is built on any more (the layers under the current image
# stay, as the next run's cache).
current="${REVISION:0:7}"
"${podman[@]}" images --format '{{.Repository}}:{{.Tag}}' |
  grep -E "^${IMAGE%:*}:cpu-[0-9a-f]{7}$" | grep -v ":cpu-$current$" |
  xargs -r "${podman[@]}" rmi >/dev/null 2>&1 || true
for _ in 1 2 3; do "${podman[@]}" image prune -f >/dev/null || true; done
echo "storage: $(du -sh "$SCRATCH" | cut -f1) in ${SCRATCH#"$ROOT"/}"
echo "test-build: PASSED"
