#!/usr/bin/env bash
# Builds go-note against Debian's golang.org/x/mod (GOPATH mode: no module
# download, nothing fetched), installing Go and the package if missing.
# Prints the binary's path.
#
#   tests/interop/go-note/build.sh [OUT_DIR]     (default ~/.cache/warrant/go-note)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$HOME/.cache/warrant/go-note}"
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/golang.org/x/mod/sumdb/note ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-golang-x-mod-dev) >&2
fi
mkdir -p "$out"
cd "$here"
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$out/cache" GOFLAGS= go build -o "$out/go-note" . >&2
echo "$out/go-note"
