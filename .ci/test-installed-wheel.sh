#!/usr/bin/env bash
# Builds gpu-devbox's wheel as a release would (a production build of the Lab extension, from a
# copy of the source tree), installs it into a fresh virtual environment with no Node.js on PATH,
# and tests the *installed* package from outside the source tree: the server extension and the
# Lab extension are enabled, JupyterLab loads, and the pytest suite passes against the wheel.
# Catches what an editable install hides: a wheel missing openapi.json, a JSON schema, a data
# table or the built labextension. Run by `./run-tests wheel` (and so by CI).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK="$ROOT/.scratch/wheel"
PY="${PYTHON:-python3}"

step() { printf -- '\n--- wheel: %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }

rm -rf "$WORK"
mkdir -p "$WORK/src" "$WORK/dist" "$WORK/run" "$WORK/no-node"

step "a copy of the source tree (tracked and new files, no build outputs)"
git ls-files -z --cached --others --exclude-standard |
  (cd "$ROOT" && xargs -0 cp --parents -t "$WORK/src" 2>/dev/null || true)
# Files deleted in the working tree but still tracked are simply absent from the copy.
# The Lab extension's dependencies are reused (same yarn.lock), not downloaded again.
if [ -d labextension/node_modules ]; then
  ln -s "$ROOT/labextension/node_modules" "$WORK/src/labextension/node_modules"
fi

step "sdist, then the wheel built from it (a production build of the Lab extension)"
(cd "$WORK/src" && timeout 900 "$PY" -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1) ||
  {
    tail -40 "$WORK/build.log"
    exit 1
  }
ls -la "$WORK/dist"
wheel=$(ls "$WORK"/dist/gpu_devbox-*.whl)
"$PY" - "$wheel" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = [
    "gpu_devbox/server/openapi.json",
    "gpu_devbox/catalog/catalog.schema.json",
    "gpu_devbox/cuda/data/facts.schema.json",
    "gpu_devbox/_version.py",
    "gpu_devbox_spawner/templates/form.html",
    "gpu_devbox_culler/templates/admin.html",
]
missing = [n for n in need if n not in names]
lab = [n for n in names if "/share/jupyter/labextensions/gpu-devbox/static/" in n]
conf = [n for n in names if n.endswith("etc/jupyter/jupyter_server_config.d/gpu_devbox.json")]
if missing or not lab or not conf:
    sys.exit(f"wheel: missing {missing or ''}{' the built labextension' if not lab else ''}"
             f"{' the server-config JSON' if not conf else ''}")
print(f"wheel: {len(names)} files, labextension {len(lab)} files, server config present")
PY

# W002: the labextension ships identical small files; W009: gpu_devbox_spawner and
# gpu_devbox_culler are more top-level packages on purpose (the hub layer, in the same wheel).
check-wheel-contents --ignore W002,W009 "$wheel"

step "a fresh environment with the wheel, and no Node.js on PATH"
# A stand-in that fails loudly: nothing in an installed wheel may need Node.js.
printf '#!/bin/sh\necho "node is not available in the installed-wheel test" >&2\nexit 127\n' \
  >"$WORK/no-node/node"
cp "$WORK/no-node/node" "$WORK/no-node/npm"
cp "$WORK/no-node/node" "$WORK/no-node/jlpm"
chmod +x "$WORK"/no-node/*
"$PY" -m venv "$WORK/venv"
export PATH="$WORK/no-node:$WORK/venv/bin:$PATH"
export VIRTUAL_ENV="$WORK/venv"
timeout 900 python -m pip install -q --upgrade pip
timeout 900 python -m pip install -q "${wheel}[test,hub,lab,dev]" 2>&1 | { grep -v "^WARNING: Location" || true; }

step "installed, enabled, loadable (from outside the source tree)"
cd "$WORK/run"
python -c 'import gpu_devbox, sys; print(gpu_devbox.__version__, gpu_devbox.__file__); sys.exit("site-packages" not in gpu_devbox.__file__)'
jupyter server extension list 2>&1 | tee "$WORK/server-ext.txt" >/dev/null
grep -qE "gpu_devbox .*OK" "$WORK/server-ext.txt" || {
  cat "$WORK/server-ext.txt"
  exit 1
}
jupyter labextension list 2>&1 | tee "$WORK/lab-ext.txt" >/dev/null
grep -qE "^ *gpu-devbox .*enabled.*OK" "$WORK/lab-ext.txt" || {
  cat "$WORK/lab-ext.txt"
  exit 1
}
echo "server extension and labextension: enabled, OK"
timeout 300 python -m jupyterlab.browser_check --no-browser-test --allow-root >"$WORK/browser_check.log" 2>&1 ||
  {
    tail -30 "$WORK/browser_check.log"
    exit 1
  }
echo "jupyterlab.browser_check (no browser): OK"

step "pytest against the installed wheel (in a copy of the tree without the package sources)"
# Tests read the repository's documents, images/ and scripts as usual, but `import gpu_devbox`
# can only find the installed wheel: the copy has no gpu_devbox/, spawner/ or culler/ folder.
(cd "$WORK/src" && git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
  grep -zv -E '^(gpu_devbox|spawner|culler)/' | xargs -0 cp --parents -t "$WORK/run" 2>/dev/null || true)
# Tests that need the package sources or the dev tools carry the `source_tree` marker
# (tests/conftest.py) and run in the source-tree stage only.
GPU_DEVBOX_TEST_INSTALLED=1 timeout 1200 python -m pytest -q -p no:cacheprovider \
  -m "not source_tree" tests
