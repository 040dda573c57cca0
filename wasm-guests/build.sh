#!/usr/bin/env bash
# Build, test and collect every guest: the Rust rules (wasm32-wasip2, and a
# variant with zero WASI imports via wasm32-unknown-unknown + `jco new`), and
# the JavaScript rule. The output directory becomes a ready rules folder:
# the components plus example-rules/manifest.json.
#
# Usage: ./build.sh [out-dir]    (default: wasm-guests/dist; the example
# bundle, the policy pack with these rules, lands in <out-dir>/bundle)
# Needs: rustup/cargo; node + npm for the JS rule, the zero-import variants
# and the smoke test (skipped with a warning when node is missing).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mkdir -p "${1:-$here/dist}" && cd "${1:-$here/dist}" && pwd)"
cd "$here"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/warrant/guests-target}"
# Every rule crate under rules/ (Cargo.toml's members take `rules/*` too):
# a rule added with `warrant new rule NAME` is built with no edit here.
rules=()
for dir in rules/*/; do
  if [ -f "$dir/Cargo.toml" ]; then rules+=("$(basename "$dir")"); fi
done

step() { echo "==> $*"; }
timed() { local t0=$SECONDS; "$@"; echo "    (${*:1:3}… $((SECONDS - t0)) s)"; }

step "rustup target add wasm32-wasip2 wasm32-unknown-unknown"
if command -v rustup >/dev/null; then
  rustup target add wasm32-wasip2 wasm32-unknown-unknown >/dev/null
else
  echo "    rustup not found: assuming the targets are installed"
fi

step "Cargo.lock covers every crate (cargo fetch --locked)"
# The builds below use --locked, so that they build exactly what the lock file
# pins. A crate added under rules/ is not in it yet: say what to run instead
# of cargo's "cannot update the lock file".
if ! fetched="$(cargo fetch --locked 2>&1)"; then
  echo "$fetched" >&2
  if grep -q -- '--locked was passed' <<<"$fetched"; then
    echo "error: Cargo.lock does not list every crate of this workspace (a rule added by hand?): run" >&2
    echo "    (cd $here && cargo update --workspace --offline)" >&2
    echo "  (without --offline if cargo has never fetched these dependencies), then build again and commit Cargo.lock" >&2
  fi
  exit 1
fi

step "host unit tests"
timed cargo test --locked --quiet

step "rules for wasm32-wasip2 (release)"
timed cargo build --locked --release --target wasm32-wasip2 --quiet
step "rules for wasm32-unknown-unknown (release, to componentize without WASI)"
timed cargo build --locked --release --target wasm32-unknown-unknown --quiet

for rule in "${rules[@]}"; do
  cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/${rule//-/_}.wasm" "$out/$rule.wasm"
done
# `./build.sh example-rules` builds next to the manifest itself.
[ "$out/manifest.json" -ef example-rules/manifest.json ] || cp example-rules/manifest.json "$out/manifest.json"

if command -v npm >/dev/null; then
  step "JavaScript rule (jco componentize, QuickJS backend)"
  (
    cd js-rule
    if [ ! -d node_modules ]; then
      # Not `npm ci`: jco-node-fs 0.3.2 lists platform packages that were
      # never published, which `npm install` skips and `npm ci` rejects.
      # The lock file still pins every package that is installed.
      timed npm install --no-audit --no-fund --loglevel=error
    fi
    timed npm run --silent build
  )
  cp js-rule/js-rule.wasm "$out/js-rule.wasm"

  step "zero-WASI-import variants (jco new)"
  for rule in "${rules[@]}"; do
    js-rule/node_modules/.bin/jco new "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/${rule//-/_}.wasm" \
      -o "$out/$rule.nowasi.wasm" >/dev/null
  done

  step "imports per component"
  for f in "$out"/*.wasm; do
    imports="$(js-rule/node_modules/.bin/jco wit "$f" | sed -n 's/^ *import \([^;]*\);/\1/p' | tr '\n' ' ')"
    echo "    $(basename "$f"): ${imports:-none}"
  done

  step "smoke test (components run in Node via jco transpile)"
  # The QuickJS component uses extended constant expressions, which wasmtime
  # enables by default and Node 20 only behind a flag.
  node_flags=()
  if node --v8-options | grep -q -- '--experimental-wasm-extended-const'; then
    node_flags+=(--experimental-wasm-extended-const)
  fi
  node "${node_flags[@]}" js-rule/smoke.mjs "$out"
else
  echo "warning: npm not found: skipped the JavaScript rule, the zero-import variants and the smoke test" >&2
fi

step "example bundle: the policy pack with these rules ($out/bundle)"
# A complete bundle to run, check and test: the pack's schema and policies,
# rules/ with the manifest and only the components it names, and the rule
# cases in example-rules/tests (the pack's own cases stay with the pack).
rm -rf "$out/bundle"
mkdir -p "$out/bundle/rules" "$out/bundle/tests"
cp ../policies/*.cedarschema ../policies/*.cedar "$out/bundle/"
cp example-rules/manifest.json "$out/bundle/rules/"
cp example-rules/tests/*.json "$out/bundle/tests/"
for f in "${rules[@]/%/.wasm}" js-rule.wasm; do
  # The loader refuses a component no entry names.
  if [ -f "$out/$f" ] && grep -qF "\"$f\"" example-rules/manifest.json; then cp "$out/$f" "$out/bundle/rules/"; fi
done

step "components in $out"
for f in "$out"/*.wasm; do
  printf '    %-28s %8d KiB\n' "$(basename "$f")" "$(( $(wc -c <"$f") / 1024 ))"
done
