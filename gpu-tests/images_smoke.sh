#!/usr/bin/env bash
# On a GPU machine with Docker and the NVIDIA Container Toolkit: run images/smoke_test.py in
# every CUDA image of the catalog with the GPUs attached, where a missing GPU, a torch that cannot
# use it, a GPU matmul that disagrees with the CPU's or a failing `gpu-devbox doctor` fail.
#
#   gpu-tests/images_smoke.sh                    the catalog's pushed images (cuda-X.Y tags)
#   REGISTRY=localhost gpu-tests/images_smoke.sh images built here by images/build.sh
#   gpu-tests/images_smoke.sh REF [REF...]       these images
#
# Needs: docker with `--gpus` working, gpu-devbox installed (for the catalog), nvidia-smi.
# Exit 0 when every image passed; prints one PASS/FAIL line per image.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v nvidia-smi >/dev/null || { echo "images_smoke: no nvidia-smi: not a GPU machine" >&2; exit 2; }
driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)"
echo "host driver $driver"

if [ $# -gt 0 ]; then
  refs=("$@")
else
  registry=()
  [ -z "${REGISTRY:-}" ] || registry=(--registry "$REGISTRY")
  mapfile -t refs < <(gpu-devbox images matrix "${registry[@]}" | python3 -c '
import json, sys
for entry in json.load(sys.stdin)["include"]:
    if entry["cuda"] != "cpu":
        print(entry["reference"])')
fi

failed=()
for ref in "${refs[@]}"; do
  echo "=== $ref"
  if docker run --rm --gpus all -v "$PWD/images/smoke_test.py:/tmp/smoke_test.py:ro" "$ref" \
    python /tmp/smoke_test.py --image --expect-gpu; then
    echo "PASS $ref"
  else
    echo "FAIL $ref"
    failed+=("$ref")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "images_smoke: ${#failed[@]} image(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "images_smoke: all ${#refs[@]} image(s) passed on driver $driver"
