#!/usr/bin/env bash
# Live `kelvin plan` at ~10,000 kwok nodes (a figure, not a test; docs/performance.md).
#
#   tests/bench/live_plan.sh [NODES_PER_POOL]      default 3334: 10,002 nodes of Cortex phase 2
#
# A fresh control plane (tests/cluster.sh), the nodes `kelvin plan --offline` simulates for
# examples/cortex/phase2.yaml (at most NODES_PER_POOL per pool), Kueue's and Volcano's CRDs;
# then the release `kelvin plan` against it, timed (wall time and peak RSS, /usr/bin/time):
#   1. nothing of Kelvin's in the cluster yet (every node and object to add);
#   2. after `kelvin apply --no-wait` (the CRD and the GpuCluster stored, no operator: the
#      plan dry-runs the GpuCluster and reads the stored one, every node still to change).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
per_pool="${1:-3334}"
spec="$root/examples/cortex/phase2.yaml"
runs="${KELVIN_BENCH_RUNS:-3}"

cd "$root"
cargo build --quiet --release -p kelvin
cargo build --quiet -p kelvin-e2e --bin fake-nodes
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
kelvin="$target/release/kelvin"
fake_nodes="$target/debug/fake-nodes"

dir="$(mktemp -d "${TMPDIR:-/tmp}/kelvin-bench-live-plan.XXXXXX")"
cleanup() { tests/cluster.sh down --dir "$dir/cluster" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
eval "$(tests/cluster.sh up --dir "$dir/cluster")"
start=$(date +%s)
"$fake_nodes" from-spec --max-per-pool "$per_pool" --wait --parallel 32 "$spec" >&2
echo "live_plan: $(kubectl get nodes --no-headers | wc -l) nodes Ready in $(( $(date +%s) - start )) s" >&2
tests/cluster.sh crds --dir "$dir/cluster" >/dev/null

measure() { # label, then the command
  local label="$1"; shift
  local i line
  for ((i = 1; i <= runs; i++)); do
    line="$( { /usr/bin/time -f '%e %M' "$@" >/dev/null 2>/dev/null; } 2>&1 | tail -1)"
    # /usr/bin/time prints "<seconds> <max RSS KB>"; kelvin's exit code 2 (changes) is fine.
    printf '%-34s run %d: %6.2f s  %6.1f MB peak RSS\n' "$label" "$i" \
      "$(cut -d' ' -f1 <<<"$line")" "$(awk '{print $2 / 1024}' <<<"$line")"
  done
}

nodes="$(kubectl get nodes --no-headers | wc -l)"
echo "live_plan: kelvin plan of $spec against $nodes kwok nodes"
measure "plan (nothing applied yet)" "$kelvin" plan -f "$spec"
measure "plan -o json" "$kelvin" plan -f "$spec" -o json
"$kelvin" apply -f "$spec" --auto-approve --no-wait >/dev/null 2>&1
measure "plan (GpuCluster stored)" "$kelvin" plan -f "$spec"
"$kelvin" plan -f "$spec" --out "$dir/plan" >/dev/null 2>&1 || true
echo "live_plan: saved plan $(du -k "$dir/plan" | cut -f1) KB"
