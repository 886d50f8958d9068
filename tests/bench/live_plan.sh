#!/usr/bin/env bash
# Live `kelvin plan` at ~10,000 kwok nodes (a figure, not a test; docs/performance.md).
#
#   tests/bench/live_plan.sh [NODES_PER_POOL]      default 3334: 10,002 nodes of Cortex phase 2
#
# A fresh control plane (tests/cluster.sh), the nodes `kelvin plan --offline` simulates for
# examples/cortex/phase2.yaml (at most NODES_PER_POOL per pool), Kueue's and Volcano's CRDs;
# then the release `kelvin plan` against it, timed (wall time, the process's CPU time and peak
# RSS, /usr/bin/time; the wall time is mostly the API server's, so `kubectl get nodes -o json`
# of the same nodes is timed beside it):
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
"$fake_nodes" from-spec --max-per-pool "$per_pool" --parallel 32 "$spec" >&2
# kwok marks them Ready in its own time (minutes at 10,000 on a busy 2-core machine); a plan
# reads NotReady nodes as well, so wait a while for the figure to be of Ready nodes, no longer.
ready() { kubectl get nodes --no-headers | awk '$2 == "Ready"' | wc -l; }
total="$(kubectl get nodes --no-headers | wc -l)"
for ((i = 0; i < ${KELVIN_BENCH_READY_WAIT:-300} / 5; i++)); do
  (( $(ready) >= total )) && break
  sleep 5
done
echo "live_plan: $(ready) of $total nodes Ready after $(( $(date +%s) - start )) s" >&2
tests/cluster.sh crds --dir "$dir/cluster" >/dev/null

measure() { # label, then the command: wall time, CPU time of the process, peak RSS
  local label="$1"; shift
  local i line
  for ((i = 1; i <= runs; i++)); do
    # -o: time's report to a file of its own (the command's stderr is discarded).
    /usr/bin/time -o "$dir/time" -f '%e %U %S %M' "$@" >/dev/null 2>&1 || true
    line="$(tail -1 "$dir/time")"
    # kelvin's exit code 2 (changes) is fine.
    read -r wall user sys rss <<<"$line"
    printf '%-34s run %d: %6.2f s wall, %5.2f s CPU, %6.1f MB peak RSS\n' "$label" "$i" \
      "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')" "$(awk -v r="$rss" 'BEGIN {print r / 1024}')"
  done
}

nodes="$(kubectl get nodes --no-headers | wc -l)"
echo "live_plan: kelvin plan of $spec against $nodes kwok nodes"
# What the API server alone takes to list the same nodes (kubectl, same page size), beside it.
runs=1 measure "kubectl get nodes -o json" kubectl get nodes -o json --chunk-size=500
measure "plan (nothing applied yet)" "$kelvin" plan -f "$spec"
measure "plan -o json" "$kelvin" plan -f "$spec" -o json
"$kelvin" apply -f "$spec" --auto-approve --no-wait >/dev/null 2>&1
measure "plan (GpuCluster stored)" "$kelvin" plan -f "$spec"
"$kelvin" plan -f "$spec" --out "$dir/plan" >/dev/null 2>&1 || true
echo "live_plan: saved plan $(du -k "$dir/plan" | cut -f1) KB"
