#!/usr/bin/env bash
# Builds gpu-devbox notebook images locally, generated from the catalog exactly as CI builds
# them (same Dockerfile, build arguments and tags: `gpu-devbox images bake`).
#
# Usage: images/build.sh [CUDA_VERSION]    13.0, 12.6, ... or cpu; nothing: every image
#
# Environment (all optional):
#   CATALOG     a catalog YAML (default: the catalog gpu-devbox ships)
#   REGISTRY    tag prefix (default: localhost): localhost/pytorch-notebook:cuda-13.0, ...
#   BUILDER     docker (docker buildx bake) or podman (default: docker when `docker buildx`
#               works, else podman)
#   BUILD_ARGS  space-separated NAME=VALUE build arguments that override the catalog's,
#               e.g. "BASE_IMAGE=localhost/my-base:1 PYTHON_VERSION=3.13"
#   OPTIONS     space-separated build options: zsh, nsys (gpu-devbox images bake --option)
#   PLATFORM    podman only: build for this platform (linux/arm64 through QEMU); default: this
#               machine's
#   PODMAN      the podman command (default: podman), e.g. "podman --root DIR --runtime runc"
#   PODMAN_BUILD_FLAGS  extra `podman build` flags, e.g. "--network host"
#   GPU_DEVBOX  the gpu-devbox command (default: gpu-devbox; `pip install -e .` provides it)
set -euo pipefail
cd "$(dirname "$0")/.."

LINE="${1:-}"
REGISTRY="${REGISTRY:-localhost}"
read -ra GPU_DEVBOX_CMD <<<"${GPU_DEVBOX:-gpu-devbox}"
command -v "${GPU_DEVBOX_CMD[0]}" >/dev/null ||
  { echo "build.sh: ${GPU_DEVBOX_CMD[0]} not found; run 'pip install -e .' first" >&2; exit 2; }

if [ -z "${BUILDER:-}" ]; then
  if docker buildx version >/dev/null 2>&1; then BUILDER=docker; else BUILDER=podman; fi
fi
case "$BUILDER" in docker | podman) ;; *)
  echo "build.sh: BUILDER must be docker or podman, not '$BUILDER'" >&2
  exit 2
  ;;
esac

filter=()
[ -z "$LINE" ] || filter=(--cuda "$LINE")
catalog=()
[ -z "${CATALOG:-}" ] || catalog=(--catalog "$CATALOG")
sha="$(git rev-parse HEAD 2>/dev/null || true)"
sha_arg=()
[ -z "$sha" ] || sha_arg=(--sha "$sha")

scratch=.scratch/images
mkdir -p "$scratch"
bake_file="$scratch/bake.json"
# Check the catalog and the line before the (slower) wheel build.
options=()
for option in ${OPTIONS:-}; do options+=(--option "$option"); done
case "$(uname -m)" in aarch64 | arm64) native=linux/arm64 ;; *) native=linux/amd64 ;; esac
platform="${PLATFORM:-$native}"
"${GPU_DEVBOX_CMD[@]}" images bake "${catalog[@]}" "${filter[@]}" "${sha_arg[@]}" "${options[@]}" \
  --platform "$platform" --registry "$REGISTRY" >"$bake_file"

# Each image installs its lock: a stale or missing one fails here, not after a long build.
mapfile -t names < <(python3 -c '
import json, sys
print("\n".join(json.load(open(sys.argv[1]))["group"]["default"]["targets"]))' "$bake_file")
"${GPU_DEVBOX_CMD[@]}" images lock --check "${catalog[@]}" "${names[@]}" >&2 ||
  { echo "build.sh: the locks above are not current (gpu-devbox images lock IMAGE)" >&2; exit 2; }

echo "build.sh: building gpu-devbox's wheel from this checkout (outside the image)" >&2
images/install.sh wheel images/wheels

if [ "$BUILDER" = docker ]; then
  # --load takes one platform: this machine's (CI pushes every platform of the catalog).
  overrides=(--set "*.platform=$platform")
  for arg in ${BUILD_ARGS:-}; do overrides+=(--set "*.args.$arg"); done
  exec docker buildx bake --file "$bake_file" --load "${overrides[@]}"
fi

# podman: one `podman build` per bake target, with the target's arguments and tags.
read -ra PODMAN_CMD <<<"${PODMAN:-podman}"
read -ra EXTRA <<<"${PODMAN_BUILD_FLAGS:-}"
while IFS= read -r -d '' target; do
  mapfile -d '' -t argv < <(python3 - "$bake_file" "$target" "${BUILD_ARGS:-}" <<'PY'
import json, sys

bake, name, overrides = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3].split()
target = bake["target"][name]
args = dict(target["args"])
for item in overrides:
    key, sep, value = item.partition("=")
    if not sep:
        sys.exit(f"build.sh: BUILD_ARGS item {item!r} is not NAME=VALUE")
    args[key] = value
out = ["--file", target["dockerfile"], "--target", target["target"], "--format", "docker"]
out += ["--platform", target["platforms"][0]]
out += [part for key, value in args.items() for part in ("--build-arg", f"{key}={value}")]
out += [part for tag in target["tags"] for part in ("--tag", tag)]
out.append(target["context"])
sys.stdout.write("".join(f"{part}\0" for part in out))
PY
  )
  echo "build.sh: podman build $target" >&2
  "${PODMAN_CMD[@]}" build "${EXTRA[@]}" "${argv[@]}"
done < <(python3 -c '
import json, sys
targets = json.load(open(sys.argv[1]))["group"]["default"]["targets"]
sys.stdout.write("".join(f"{t}\0" for t in targets))' "$bake_file")
