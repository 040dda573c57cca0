#!/usr/bin/env bash
# Installs the fixture's npm packages (package-lock.json, `npm ci`) into a
# cache keyed by the lock file's hash, links them in as tests/oidc/node_modules
# and prints the fixture's directory (what tests read as WARRANT_TEST_OIDC_DIR).
#
#   tests/oidc/install.sh          # cache under ~/.cache/warrant/oidc
#
# Why a cache and a link: CI runs in a fresh clone every time, and the cache
# outlives clones, so an unchanged lock costs a hash and a symlink. ESM ignores
# NODE_PATH, so the packages must be found by walking up from provider.mjs:
# hence the link rather than an environment variable. The link is gitignored.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${WARRANT_OIDC_CACHE:-$HOME/.cache/warrant/oidc}"

if ! command -v npm >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm) >&2
fi

# package.json is hashed too: `npm ci` refuses a lock that disagrees with it.
key="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-16)"
dir="$cache_root/$key"

mkdir -p "$cache_root"
# Two test runs on one machine share the cache: one installs, the other waits.
exec 9>"$cache_root/.lock"
flock 9

if [ ! -f "$dir/.installed" ]; then
  # INVARIANT: .installed exists only beside a complete `npm ci`; a run killed
  # half-way leaves a directory that the next run wipes and redoes.
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$here/package.json" "$here/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error --prefer-offline) >&2
  touch "$dir/.installed"
fi

# A real directory here is an `npm ci` run by hand: derived and gitignored,
# and ln would put the link inside it, so it goes.
if [ -d "$here/node_modules" ] && [ ! -L "$here/node_modules" ]; then
  rm -rf "$here/node_modules"
fi
# -n: replace an existing link instead of creating one inside its target.
ln -sfn "$dir/node_modules" "$here/node_modules"
echo "$here"
