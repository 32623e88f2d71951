#!/usr/bin/env bash
# Makes a `docker buildx` plugin available to the tests (they check the generated bake file
# with `docker buildx bake --print`, which needs no Docker daemon) and prints the DOCKER_CONFIG
# directory that holds it. The plugin comes from Debian's docker-buildx package only (Debian 12
# has none, so it is fetched from Debian 13 "trixie" with a private apt configuration: nothing
# on the system changes); the binary is static. Exit 1 (and a reason on stderr) when there is
# no docker CLI, no apt-get, or the package cannot be fetched; the bake test then skips.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="$(pwd)/.scratch/buildx"
CONFIG="$DIR/docker-config"

command -v docker >/dev/null || { echo "get-buildx: no docker CLI" >&2; exit 1; }
if docker buildx version >/dev/null 2>&1; then
  echo "${DOCKER_CONFIG:-$HOME/.docker}"
  exit 0
fi
if [ -x "$CONFIG/cli-plugins/docker-buildx" ]; then
  [ -f "$CONFIG/config.json" ] || echo '{}' >"$CONFIG/config.json"
  echo "$CONFIG"
  exit 0
fi
command -v apt-get >/dev/null || { echo "get-buildx: no apt-get to fetch docker-buildx" >&2; exit 1; }

# This machine's own Debian mirror, asked for the next release.
mirror=$(apt-cache policy | awk '/ Packages$/ && $3 ~ /\/main$/ && $2 ~ /\/debian\/?$/ && !found { print $2; found = 1 }')
[ -n "$mirror" ] || { echo "get-buildx: no Debian mirror in this machine's apt sources" >&2; exit 1; }
mkdir -p "$DIR/apt/lists/partial" "$DIR/apt/cache/archives/partial" "$DIR/deb" "$CONFIG/cli-plugins"
echo "deb $mirror trixie main" >"$DIR/apt/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$DIR/apt/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
  -o "Dir::State::Lists=$DIR/apt/lists" -o "Dir::Cache=$DIR/apt/cache"
  -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1"
)
if ! { apt-get "${apt_opts[@]}" update -q && (cd "$DIR/deb" &&
  apt-get "${apt_opts[@]}" download docker-buildx); } >"$DIR/apt.log" 2>&1; then
  echo "get-buildx: apt-get could not fetch docker-buildx; see $DIR/apt.log" >&2
  exit 1
fi
debs=("$DIR"/deb/docker-buildx_*.deb)
rm -rf "$DIR/extract"
dpkg-deb -x "${debs[-1]}" "$DIR/extract"
cp "$DIR/extract/usr/libexec/docker/cli-plugins/docker-buildx" "$CONFIG/cli-plugins/"
rm -rf "$DIR/extract" "$DIR/apt/lists" "$DIR/apt/cache"
# An empty client configuration: tools reading DOCKER_CONFIG (podman too) expect the file.
echo '{}' >"$CONFIG/config.json"
DOCKER_CONFIG="$CONFIG" docker buildx version >&2
echo "$CONFIG"
