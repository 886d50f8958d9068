#!/usr/bin/env bash
# Real inventories: generates `kubectl get nodes -o json` files of realistic nodes (8,750 and
# 70,000 by default, ~12 KB each: labels of kubelet, NFD and GPU feature discovery,
# managedFields, images, conditions, annotations) and prints, per size, Kelvin's streaming
# read (wall, CPU, peak RSS, in a fresh process) and a whole `kelvin plan --offline` against it
# (/usr/bin/time: wall, user, sys, max RSS). A program that prints figures, not a timed test.
#
#   tests/bench/inventory.sh [NODES…]     # files go to $KELVIN_BENCH_DIR (default /tmp/kelvin-bench-inventory)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(8750 70000)
dir=${KELVIN_BENCH_DIR:-${TMPDIR:-/tmp}/kelvin-bench-inventory}
mkdir -p "$dir"

cargo build --release -p kelvin >&2
bench=$(cargo bench -p kelvin-core --bench inventory --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$bench" ] || { echo "could not build the inventory bench" >&2; exit 1; }

for nodes in "${sizes[@]}"; do
    spec=$dir/spec-$nodes.yaml
    inventory=$dir/nodes-$nodes.json
    [ -f "$inventory" ] || "$bench" --write "$nodes" "$spec" "$inventory"
    "$bench" --read "$inventory"
    for run in 1 2; do
        /usr/bin/time -f "plan  $nodes nodes (run $run)  wall %e s  user %U s  sys %S s  max RSS %M KB" \
            target/release/kelvin plan --offline -f "$spec" --inventory "$inventory" -o json >/dev/null
    done
done
