"""The configurable-http-proxy the hub tests run, and every package it pulls, support our Node.js.

The README asks for Node.js 20. configurable-http-proxy 5.3 depends on commander 15, which
declares Node.js >= 22.12; an install that ignores ``engines`` hides that until a user's proxy
breaks. This checks the installed tree against the Node.js that runs it, with npm's own semver.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests_hub.hub import CHP_VERSION, ROOT, find_chp

# Every package.json below node_modules, and the Node.js ranges it declares that this Node.js
# does not satisfy, as "name@version needs RANGE". npm's semver is the judge.
_CHECK_ENGINES = r"""
const fs = require('fs');
const path = require('path');
const semver = require(process.argv[2]);
const bad = [];
function walk(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const where = path.join(dir, entry.name);
    if (entry.name.startsWith('@')) { walk(where); continue; }
    const file = path.join(where, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
      const range = pkg.engines && pkg.engines.node;
      if (range && !semver.satisfies(process.version, range)) {
        bad.push(`${pkg.name}@${pkg.version} needs ${range}`);
      }
    }
    const nested = path.join(where, 'node_modules');
    if (fs.existsSync(nested)) walk(nested);
  }
}
walk(process.argv[1]);
console.log(JSON.stringify({ node: process.version, bad }));
"""


def _npm_semver() -> str:
    npm = shutil.which("npm")
    assert npm, "npm is needed for the hub tests (configurable-http-proxy)"
    root = subprocess.run(
        [npm, "root", "-g"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    semver = Path(root) / "npm" / "node_modules" / "semver"
    assert (semver / "package.json").exists(), f"npm's semver is not at {semver}"
    return str(semver)


def test_the_hub_tests_run_the_pinned_proxy() -> None:
    proxy = Path(find_chp())
    package = json.loads(
        (ROOT / "node_modules" / "configurable-http-proxy" / "package.json").read_text()
    )
    assert proxy.is_relative_to(ROOT / "node_modules")
    assert package["version"] == CHP_VERSION


def test_every_package_of_the_proxy_supports_this_node() -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed for the hub tests (configurable-http-proxy)"
    out = subprocess.run(
        [node, "-e", _CHECK_ENGINES, str(ROOT / "node_modules"), _npm_semver()],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    report = json.loads(out)
    assert report["bad"] == [], f"on Node.js {report['node']}: {report['bad']}"
