#!/usr/bin/env bash
# Kelvin's whole test suite, as .ci/run and the README run it on a fresh machine:
# build the control-plane binaries when missing (cached outside the repo), then formatting,
# lints, and every test (unit, golden, CLI, and end-to-end against the real control plane).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*" >&2; }

step "control-plane binaries and Kueue (tests/testbin/build.sh; cold ~15-20 min, cached after)"
time tests/testbin/build.sh >/dev/null

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test --workspace"
cargo test --workspace --locked

# The operator's image: a static release build packed FROM scratch by podman. Skips with a
# "SKIPPED: podman is not installed" line (exit 0) on machines without podman.
step "tests/image.sh (the kelvin-operator image)"
tests/image.sh
