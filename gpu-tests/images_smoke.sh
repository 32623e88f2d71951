#!/usr/bin/env bash
# On a GPU machine with Docker and the NVIDIA Container Toolkit: run images/smoke_test.py in
# every CUDA image of the catalog with the GPUs attached, where a missing GPU, a torch that cannot
# use it, a GPU matmul that disagrees with the CPU's or a failing `gpu-devbox doctor` fail. In
# the fine-tuning images, also a 4-bit LoRA training step on the GPU (gpu-tests/finetune_check.py:
# bitsandbytes, PEFT, transformers, Unsloth); where an image has Nsight Systems (built with
# --option nsys), `nsys profile` of a CUDA call.
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
  ok=1
  docker run --rm --gpus all -v "$PWD/images/smoke_test.py:/tmp/smoke_test.py:ro" "$ref" \
    python /tmp/smoke_test.py --image --expect-gpu || ok=0
  if docker run --rm "$ref" python -c "import peft" >/dev/null 2>&1; then
    docker run --rm --gpus all --shm-size 8g \
      -v "$PWD/gpu-tests/finetune_check.py:/tmp/finetune_check.py:ro" "$ref" \
      python /tmp/finetune_check.py || ok=0
  fi
  if docker run --rm "$ref" sh -c "command -v nsys" >/dev/null 2>&1; then
    docker run --rm --gpus all "$ref" sh -c \
      'nsys profile -o /tmp/p python -c "import torch; torch.ones(1, device=\"cuda\")" && test -s /tmp/p.nsys-rep' ||
      ok=0
  fi
  if [ "$ok" = 1 ]; then
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
