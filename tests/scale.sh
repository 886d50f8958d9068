#!/usr/bin/env bash
# Scale figures for the test control plane (not a test: it prints numbers).
#
#   tests/scale.sh [N ...]        default: 1000 5000 10000
#
# For each N: a fresh control plane (tests/cluster.sh), N fake GPU nodes created and waited
# Ready, then a DaemonSet with one pod per node waited Ready, then one idle minute. Prints the
# times, the memory (RSS) of each component after each step, and the CPU the control plane
# burns while idle with N nodes (kwok renews one Lease per node every ~10 s, as kubelets do).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
counts=("$@")
((${#counts[@]})) || counts=(1000 5000 10000)
idle="${KELVIN_SCALE_IDLE_SECONDS:-60}"

(cd "$root" && cargo build --quiet -p kelvin-e2e --bin fake-nodes)
fake_nodes="$(cd "$root" && cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/fake-nodes"
[[ -x "$fake_nodes" ]] || { echo "scale: $fake_nodes not built" >&2; exit 1; }

cpu_ticks() { # total utime+stime of the components, in clock ticks
  local total=0 f pid t
  for f in "$dir"/pids/*; do
    pid="$(cat "$f")"
    t="$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)"
    total=$((total + t))
  done
  echo "$total"
}

section() { printf '\n== %s\n' "$*"; }

echo "kwok lease ${KELVIN_KWOK_LEASE_SECONDS:-40} s (renewed every quarter), node monitor grace ${KELVIN_NODE_MONITOR_GRACE:-2m}, $(nproc) CPUs"
for n in "${counts[@]}"; do
  base="$(mktemp -d)"
  dir="$base/cluster"
  trap '"$here/cluster.sh" down --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$base"' EXIT
  section "$n nodes"
  "$here/cluster.sh" up --dir "$dir" >"$base/env"
  # shellcheck disable=SC1091
  source "$base/env"

  "$fake_nodes" create --count "$n" --wait --timeout 3600 --parallel 64
  "$here/cluster.sh" stats --dir "$dir"

  section "DaemonSet on $n nodes"
  kubectl create namespace scale >/dev/null
  until kubectl -n scale get serviceaccount default >/dev/null 2>&1; do sleep 0.2; done
  start=$SECONDS
  kubectl apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: gpu-plugin, namespace: scale}
spec:
  selector: {matchLabels: {app: gpu-plugin}}
  template:
    metadata: {labels: {app: gpu-plugin}}
    spec:
      nodeSelector: {e2e.kelvin.dev/node-set: gpu-h100}
      tolerations: [{operator: Exists}]
      containers:
      - name: plugin
        image: registry.invalid/device-plugin:v0
        resources: {limits: {nvidia.com/gpu: "1"}}
EOF
  best=0 progress=$SECONDS
  while true; do
    ready="$(kubectl -n scale get ds gpu-plugin -o jsonpath='{.status.numberReady}')"
    ready="${ready:-0}"
    ((ready > best)) && best=$ready progress=$SECONDS
    if ((ready >= n)); then
      echo "DaemonSet: $n pods Ready in $((SECONDS - start)) s"
      break
    fi
    if ((SECONDS - progress > 180)); then
      echo "DaemonSet: stuck at $ready of $n Ready (best $best) after $((SECONDS - start)) s"
      kubectl get events -A --field-selector reason=NodeNotReady --no-headers 2>/dev/null |
        wc -l | xargs printf 'NodeNotReady events: %s\n'
      break
    fi
    sleep 2
  done
  "$here/cluster.sh" stats --dir "$dir"

  section "idle for $idle s with $n nodes and $n pods"
  hz="$(getconf CLK_TCK)"
  before="$(cpu_ticks)"
  sleep "$idle"
  after="$(cpu_ticks)"
  awk -v d="$((after - before))" -v hz="$hz" -v s="$idle" \
    'BEGIN { printf "control plane CPU while idle: %.2f cores\n", d / hz / s }'
  ready_nodes="$(kubectl get nodes --no-headers | awk '$2 == "Ready"' | wc -l)"
  echo "nodes still Ready after idling: $ready_nodes of $n"
  "$here/cluster.sh" stats --dir "$dir"

  "$here/cluster.sh" down --dir "$dir" >/dev/null 2>&1
  rm -rf "$base"
  trap - EXIT
done
