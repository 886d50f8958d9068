#!/usr/bin/env bash
# Convergence of kelvin-operator at N nodes, beside `kubectl label` and the API server's own
# node-PATCH ceiling, on the same nodes in one run (a program that prints figures, not a test;
# docs/performance.md records them).
#
#   tests/bench/converge.sh [--nodes N] [--steady SECONDS] [--plain]
#
# N defaults to 1,000 (10,000 runs on a 2-core machine). The nodes are kwok nodes dressed as
# production HGX H100 nodes (~100 labels, annotations, images; tests/e2e/src/realistic.rs)
# unless --plain, half in a `train` pool and half in an `infer` pool of a generated spec whose
# device plugins someone else runs (`managedBy: None`: convergence is node labels, one write per
# node, no DaemonSet pods; a device-plugin config label would be a disruptive transition rolled
# out within maxUnavailable, a different measurement). In order:
#   1. N/10 nodes: the operator converges them (its peak RSS there is the base of the marginal
#      per-node figure), then the GpuCluster is deleted and its finalizer cleans the nodes;
#   2. the other nodes, up to N;
#   3. baseline: `kubectl label nodes -l <pool selector> <the labels Kelvin sets on every node
#      of the pool>` for each pool, timed, then removed;
#   4. ceiling: label PATCHes to the same nodes (at most 2,000 of them per round) at 1, 2, 4 ...
#      concurrent requests until throughput stops growing (tests/e2e/src/bin/bench-load.rs), as
#      server-side apply (what Kelvin sends) and as a merge patch (what kubectl sends);
#   5. the operator (release build, already leading) from `kubectl apply` of the GpuCluster to
#      every node labelled, watched from outside: wall time, writes (its /metrics), peak RSS,
#      CPU; then, once the GpuCluster's status says Converged and its writes have stopped,
#      SECONDS (60) of steady state: writes (must be 0; Lease renewals are not counted) and CPU.
# Prints a table and, last, one JSON line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
nodes=1000 steady=60 realistic=(--realistic)
while (($#)); do
  case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    --steady) steady="$2"; shift 2 ;;
    --plain) realistic=(); shift ;;
    -h | --help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "converge: unknown argument $1" >&2; exit 2 ;;
  esac
done
((nodes >= 20 && nodes <= 16384)) || { echo "converge: --nodes must be 20 to 16,384 (two fabrics of 8,192)" >&2; exit 2; }
half=$((nodes / 2)) small=$((nodes / 10))

cd "$root"
cargo build --quiet --release -p kelvin-operator -p kelvin
cargo build --quiet --release -p kelvin-e2e --bin fake-nodes --bin bench-load
target="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
operator_bin="$target/release/kelvin-operator" kelvin="$target/release/kelvin"
fake_nodes="$target/release/fake-nodes" bench="$target/release/bench-load"

dir="$(mktemp -d "${TMPDIR:-/tmp}/kelvin-bench-converge.XXXXXX")"
operator_pid=""
cleanup() {
  [[ -n "$operator_pid" ]] && kill "$operator_pid" 2>/dev/null || true
  tests/cluster.sh down --dir "$dir/cluster" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
log() { echo "converge: $*" >&2; }

# --- the spec -------------------------------------------------------------------------------
# HGX H100: 8 x 700 W GPUs + 4.6 kW host (NVIDIA DGX H100 datasheet: 10.2 kW max); PUE 1.2;
# the budget and the zone's capacity leave 25 % / 10 % headroom over N such nodes.
budget_mw=$(awk -v n="$nodes" 'BEGIN {printf "%d", n * 10.2 * 1.2 * 1.25 / 1000 + 1}')
zone_kw=$(awk -v n="$nodes" 'BEGIN {printf "%d", n * 10.2 * 1.1 + 1}')
write_spec() { # FILE TRAIN_NODES INFER_NODES
  cat >"$1" <<EOF
apiVersion: kelvin.dev/v1alpha1
kind: GpuCluster
metadata:
  name: bench
spec:
  site: {powerBudgetMW: $budget_mw, pue: 1.2}
  coolingZones:
  - name: hall-a
    cooling: Liquid
    capacityKW: $zone_kw
    nodeSelector: {matchLabels: {kelvin.dev/sku: hgx-h100}}
  # One fabric per pool: a fat tree of radix-64 switches holds at most 8,192 nodes.
  fabrics:
  - name: ib-train
    type: InfiniBand
    linkGbps: 400
    railsPerNode: 8
    switchRadix: 64
    nodesPerLeaf: 32
    nvlinkDomainSize: 8
  - name: ib-infer
    type: InfiniBand
    linkGbps: 400
    railsPerNode: 8
    switchRadix: 64
    nodesPerLeaf: 32
    nvlinkDomainSize: 8
  gpuPools:
  - name: train
    nodeSelector: {matchLabels: {bench.kelvin.dev/role: train}}
    expectedNodes: $2
    accelerator: {vendor: nvidia, model: H100-SXM5-80GB, perNode: 8, tdpWatts: 700, minPowerWatts: 200}
    hostPowerWatts: 4600
    fabric: ib-train
    devicePlugin: {managedBy: None}
    labels: {example.com/purpose: training}
  - name: infer
    nodeSelector: {matchLabels: {bench.kelvin.dev/role: infer}}
    expectedNodes: $3
    accelerator: {vendor: nvidia, model: H100-SXM5-80GB, perNode: 8, tdpWatts: 700, minPowerWatts: 200}
    hostPowerWatts: 4600
    fabric: ib-infer
    devicePlugin: {managedBy: None}
    labels: {example.com/purpose: inference}
EOF
}
spec="$dir/bench.yaml" spec_small="$dir/bench-small.yaml"
write_spec "$spec" "$half" "$((nodes - half))"
write_spec "$spec_small" "$((small / 2))" "$((small - small / 2))"
"$kelvin" plan --offline -f "$spec" >/dev/null || { log "the generated spec does not plan"; exit 1; }

# --- the cluster and the first N/10 nodes -----------------------------------------------------
eval "$(tests/cluster.sh up --dir "$dir/cluster")"
k=(kubectl --kubeconfig "$KUBECONFIG")
create() { # PREFIX ROLE START COUNT
  (($4 > 0)) || return 0
  "$fake_nodes" create "${realistic[@]}" --prefix "$1" --labels "bench.kelvin.dev/role=$2" \
    --start "$3" --count "$4" --parallel 64 --wait --timeout 1800 >&2
}
create train train 0 "$((small / 2))"
create infer infer 0 "$((small - small / 2))"
"${k[@]}" apply --server-side -f crds/gpuclusters.kelvin.dev.yaml >/dev/null
"${k[@]}" wait --for condition=Established crd/gpuclusters.kelvin.dev --timeout=60s >/dev/null

metrics_port=$((20000 + RANDOM % 10000))
metric_sum() { # PREFIX: sum of the operator's samples whose series starts with PREFIX, but the
  # leader Lease's renewals (every 2 s; leader election, not reconciling)
  curl -fsS "http://127.0.0.1:$metrics_port/metrics" |
    awk -v p="$1" 'index($0, p) == 1 && !/kind="Lease"/ {s += $NF} END {printf "%d", s}'
}
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$operator_pid/stat"; }
peak_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$operator_pid/status"; }
start_operator() {
  "$operator_bin" --http-address "127.0.0.1:$metrics_port" --log-format json \
    >"$dir/operator-$1.log" 2>&1 &
  operator_pid=$!
  local i
  for ((i = 0; i < 300; i++)); do
    [[ "$(curl -fsS "http://127.0.0.1:$metrics_port/metrics" 2>/dev/null | awk '$1 == "kelvin_leader" {print $2}')" == 1 ]] && return 0
    sleep 0.2
  done
  log "the operator did not lead within 60 s"; tail -20 "$dir/operator-$1.log" >&2; exit 1
}
stop_operator() { kill "$operator_pid"; wait "$operator_pid" 2>/dev/null || true; operator_pid=""; }
quiet_writes() { # until the operator's write count holds for 3 s (at most 60 s)
  local last now i
  last="$(metric_sum kelvin_api_writes_total)"
  for ((i = 0; i < 20; i++)); do
    sleep 3
    now="$(metric_sum kelvin_api_writes_total)"
    [[ "$now" == "$last" ]] && return 0
    last="$now"
  done
  log "the operator kept writing for 60 s after converging"
}
converge() { # SPEC COUNT: seconds from apply to COUNT nodes labelled (one write carries them all)
  "$bench" converged --label kelvin.dev/pool --count "$2" -- \
    "${k[@]}" apply --server-side -f "$1"
}

log "1. $small nodes: the operator's base memory"
start_operator small
small_seconds="$(converge "$spec_small" "$small")"
small_peak_kib="$(peak_kib)"
"${k[@]}" delete gpucluster bench --timeout=300s >/dev/null
stop_operator
log "   converged $small nodes in ${small_seconds} s, peak RSS $((small_peak_kib / 1024)) MiB; deleted"

log "2. up to $nodes nodes"
create train train "$((small / 2))" "$((half - small / 2))"
create infer infer "$((small - small / 2))" "$((nodes - half - (small - small / 2)))"

# --- kubectl label, the baseline -------------------------------------------------------------
# The labels Kelvin puts on every node of a pool (the per-node topology labels differ from node
# to node: one `kubectl label` cannot set them, so the baseline writes fewer labels).
pool_labels() { # POOL PURPOSE
  echo "kelvin.dev/pool=$1 kelvin.dev/fabric=ib-$1 kelvin.dev/cooling-zone=hall-a example.com/purpose=$2"
}
log "3. kubectl label, pool by pool"
t0=$(date +%s.%N)
# shellcheck disable=SC2046 # the labels are words
"${k[@]}" label nodes -l bench.kelvin.dev/role=train $(pool_labels train training) >/dev/null
# shellcheck disable=SC2046
"${k[@]}" label nodes -l bench.kelvin.dev/role=infer $(pool_labels infer inference) >/dev/null
kubectl_seconds=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
# Removed fast (merge patches, 64 in flight): the baseline is the labelling, not this.
"$bench" remove-labels --selector bench.kelvin.dev/role \
  --keys kelvin.dev/pool,kelvin.dev/fabric,kelvin.dev/cooling-zone,example.com/purpose

log "4. the API server's node-PATCH ceiling"
# Rounds of at most 2,000 nodes: throughput per request does not depend on the node count.
sample=$((nodes < 2000 ? nodes : 2000))
ceiling_apply="$("$bench" ceiling --selector bench.kelvin.dev/role --patch apply --cleanup \
  --sample "$sample" --labels "$(pool_labels train training | tr ' ' ',')")"
ceiling_merge="$("$bench" ceiling --selector bench.kelvin.dev/role --patch merge --cleanup \
  --sample "$sample" --labels "$(pool_labels train training | tr ' ' ',')")"
json_field() { sed -n "s/.*\"$2\":\([0-9.e+]*\).*/\1/p" <<<"$1"; }
ceiling=$(json_field "$ceiling_apply" best_nodes_per_s)
ceiling_merge_rate=$(json_field "$ceiling_merge" best_nodes_per_s)

log "5. kelvin-operator, $nodes nodes"
start_operator full
writes0="$(metric_sum kelvin_api_writes_total)" node_writes0="$(metric_sum 'kelvin_api_writes_total{verb="apply",kind="Node"}')"
cpu0="$(cpu_seconds)"
operator_seconds="$(converge "$spec" "$nodes")"
# The pass that wrote the last node still writes the GpuCluster's status and its Events: that
# is convergence too. Steady state starts once the status says so and the writes have stopped.
"${k[@]}" wait gpucluster bench --timeout=300s \
  --for=jsonpath='{.status.conditions[?(@.type=="Progressing")].reason}'=Converged >/dev/null
quiet_writes
writes1="$(metric_sum kelvin_api_writes_total)" node_writes1="$(metric_sum 'kelvin_api_writes_total{verb="apply",kind="Node"}')"
cpu1="$(cpu_seconds)" peak="$(peak_kib)"
log "   converged in ${operator_seconds} s; steady state for ${steady} s"
curl -fsS "http://127.0.0.1:$metrics_port/metrics" | grep '^kelvin_api_writes_total' >"$dir/writes-before" || true
sleep "$steady"
writes2="$(metric_sum kelvin_api_writes_total)" cpu2="$(cpu_seconds)"
curl -fsS "http://127.0.0.1:$metrics_port/metrics" | grep '^kelvin_api_writes_total' >"$dir/writes-after" || true
# Which writes the steady state made, by verb and kind (Lease renewals included here).
awk 'NR == FNR {before[$1] = $2; next} $2 != before[$1] {printf "converge:   steady-state writes: %s +%d\n", $1, $2 - before[$1]}' \
  "$dir/writes-before" "$dir/writes-after" >&2
stop_operator

awk -v n="$nodes" -v small="$small" -v ks="$kubectl_seconds" -v ceil="$ceiling" -v ceilm="$ceiling_merge_rate" \
  -v os="$operator_seconds" -v w="$((writes1 - writes0))" -v nw="$((node_writes1 - node_writes0))" \
  -v sw="$((writes2 - writes1))" -v cpu="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {print b - a}')" \
  -v scpu="$(awk -v a="$cpu1" -v b="$cpu2" 'BEGIN {print b - a}')" -v steady="$steady" \
  -v peak="$peak" -v speak="$small_peak_kib" -v realistic="${#realistic[@]}" 'BEGIN {
  kr = n / ks; orate = n / os; per = (peak - speak) / (n - small)
  printf "\n%-44s %12s\n", "converge: " n " nodes" (realistic ? " (production-sized)" : " (plain kwok)"), ""
  printf "%-44s %9.1f s %9.0f nodes/s\n", "kubectl label (one PATCH at a time)", ks, kr
  printf "%-44s %11s %9.0f nodes/s\n", "API server ceiling, server-side apply", "", ceil
  printf "%-44s %11s %9.0f nodes/s\n", "API server ceiling, merge patch", "", ceilm
  printf "%-44s %9.1f s %9.0f nodes/s\n", "kelvin-operator, apply to every node labelled", os, orate
  printf "%-44s %11.1fx\n", "  speed-up over kubectl label", orate / kr
  printf "%-44s %11.0f%%\n", "  of the server-side-apply ceiling", 100 * orate / ceil
  printf "%-44s %12d (%d node applies, %.2f per node)\n", "  API writes", w, nw, nw / n
  printf "%-44s %10.1f s\n", "  CPU", cpu
  printf "%-44s %8.1f MiB (%.1f MiB at %d nodes)\n", "  peak RSS", peak / 1024, speak / 1024, small
  printf "%-44s %8.2f KiB\n", "  RSS per node (marginal)", per
  printf "%-44s %12d writes, %.2f s CPU\n", "  steady state, " steady " s", sw, scpu
  printf "{\"nodes\":%d,\"realistic\":%s,\"kubectl_seconds\":%.2f,\"ceiling_nodes_per_s\":%.0f,\"ceiling_merge_nodes_per_s\":%.0f,\"operator_seconds\":%.2f,\"operator_nodes_per_s\":%.0f,\"speedup_vs_kubectl\":%.2f,\"fraction_of_ceiling\":%.3f,\"writes\":%d,\"node_writes\":%d,\"steady_state_writes\":%d,\"steady_state_cpu_seconds\":%.2f,\"cpu_seconds\":%.2f,\"rss_mib\":%.1f,\"rss_kib_per_node\":%.2f}\n",
    n, realistic ? "true" : "false", ks, ceil, ceilm, os, orate, orate / kr, orate / ceil, w, nw, sw, scpu, cpu, peak / 1024, per
}'
