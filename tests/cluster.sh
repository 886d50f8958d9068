#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 with kwok-simulated GPU nodes, for tests and demos.
#
#   tests/cluster.sh up [--dir DIR] [--nodes N] [--audit] [--kueue]
#                                                 start etcd, kube-apiserver, kube-controller-manager,
#                                                 kube-scheduler and kwok; print the exports. --audit:
#                                                 the API server logs every request of a
#                                                 ServiceAccount outside kube-system (verb, resource,
#                                                 status: audit level Metadata) to DIR/audit.log.
#                                                 --kueue: also Kueue's CRDs and the real Kueue
#                                                 controller manager, its webhooks registered
#   tests/cluster.sh env [--dir DIR]              print the exports of the running cluster
#   tests/cluster.sh nodes [--dir DIR] ARGS...    create fake GPU nodes (see `nodes --help`)
#   tests/cluster.sh nodes from-spec SPEC         create the nodes an offline plan of SPEC simulates
#   tests/cluster.sh crds [--dir DIR]             install the Kueue and Volcano CRDs (from their own
#                                                 projects, see tests/testbin/build.sh) and wait
#                                                 until they are Established
#   tests/cluster.sh stats [--dir DIR]            memory of each component, etcd size, object counts
#   tests/cluster.sh apiserver stop|start [--dir DIR]
#                                                 fault injection: kill the API server (SIGKILL);
#                                                 start it again on the same etcd, wait for /readyz
#   tests/cluster.sh etcd compact [--dir DIR]     compact etcd at its newest revision (watches resumed
#                                                 from before it get 410 Gone)
#   tests/cluster.sh down [--dir DIR]             stop everything and remove DIR
#
# Typical use:   eval "$(tests/cluster.sh up --nodes 200)"; kubectl get nodes; tests/cluster.sh down
#
# DIR defaults to $KELVIN_CLUSTER_DIR or ${TMPDIR:-/tmp}/kelvin-cluster. The binaries come from
# tests/testbin/build.sh (built once, cached outside the repository).
#
# How processes are kept on a leash (docs/testing.md has the long version): `up` starts one
# *supervisor* (this script, `_supervise`) in a session of its own. The supervisor starts every
# component as its direct child through `setpriv --pdeathsig KILL`, so the kernel kills a
# component the moment the supervisor dies, however it dies. `down` sends the supervisor SIGTERM.
# With `--lifeline` (what the Rust harness uses) the supervisor also treats end-of-file on its
# stdin as "stop": the harness keeps the write end of that pipe open for its whole life, and the
# kernel closes it when the test process exits, panics or is SIGKILLed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
self="$here/$(basename "${BASH_SOURCE[0]}")"
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { echo "cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() { sed -n '2,29p' "$self" | sed 's/^# \{0,1\}//'; }

# --- small helpers -------------------------------------------------------------------------

# A TCP port on 127.0.0.1 that nothing listens on, below the ephemeral range so that outgoing
# connections do not take it between now and the moment the component binds it.
declare -A taken_ports=()
free_port() { # VAR
  local listening port tries=0
  listening="$(ss -Htln 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)"
  while ((tries++ < 200)); do
    port=$((20000 + RANDOM % 12000))
    [[ -n "${taken_ports[$port]:-}" ]] && continue
    grep -qx "$port" <<<"$listening" && continue
    taken_ports[$port]=1
    printf -v "$1" '%s' "$port"
    return 0
  done
  die "no free port found"
}

# True while process $1 runs. A zombie (exited, not yet reaped by its parent) counts as gone.
alive() {
  [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z ]]
}

# Parses --dir (and the flags of each command) into globals.
dir="${KELVIN_CLUSTER_DIR:-${TMPDIR:-/tmp}/kelvin-cluster}"

load_env() { # DIR -> variables of the running cluster
  [[ -f "$dir/cluster.env" ]] || die "no cluster in $dir (run: tests/cluster.sh up)"
  # shellcheck disable=SC1091
  source "$dir/cluster.env"
}

supervisor_pid() { [[ -f "$dir/supervisor.pid" ]] && cat "$dir/supervisor.pid" || true; }

print_exports() {
  printf 'export KUBECONFIG=%q\n' "$dir/kubeconfig"
  printf 'export KELVIN_TESTBIN=%q\n' "$BIN"
  printf 'export KELVIN_CLUSTER_DIR=%q\n' "$dir"
  printf 'export PATH=%q:"$PATH"\n' "$BIN"
}

# --- certificates and configuration ------------------------------------------------------------

# CA, apiserver serving cert, admin client cert (group system:masters), service-account key.
# EC P-256 keys: fast to generate, accepted by Go and by rustls.
gen_pki() {
  local p="$dir/pki"
  mkdir -p "$p"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$p/ca.key" -out "$p/ca.crt" -days 3650 \
    -subj "/CN=kelvin-test-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  sign() { # name subject extensions
    openssl req "${ec[@]}" -keyout "$p/$1.key" -out "$p/$1.csr" -subj "$2" 2>/dev/null
    printf '%b' "$3" >"$p/$1.ext"
    openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" \
      -set_serial "0x$(openssl rand -hex 12)" -days 3650 -extfile "$p/$1.ext" \
      -out "$p/$1.crt" 2>/dev/null
    rm -f "$p/$1.csr" "$p/$1.ext"
  }
  sign apiserver "/CN=kube-apiserver" \
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
  sign admin "/O=system:masters/CN=kelvin-admin" \
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  chmod 600 "$p"/*.key
}

write_kubeconfig() {
  local p="$dir/pki" b64="base64 -w0"
  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kelvin-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $($b64 <"$p/ca.crt")
users:
- name: kelvin-admin
  user:
    client-certificate-data: $($b64 <"$p/admin.crt")
    client-key-data: $($b64 <"$p/admin.key")
contexts:
- name: kelvin-test
  context: {cluster: kelvin-test, user: kelvin-admin}
current-context: kelvin-test
EOF
  chmod 600 "$dir/kubeconfig"
}

# kwok needs Stage objects to know what to do with nodes and pods. We read kwok's own stages
# from the Go module cache (the kwok module pinned in tests/testbin/kwok), at runtime:
# node-initialize (Ready + keep our capacity), heartbeat-with-lease, pod-ready/complete/delete.
kwok_stage_files() {
  local mod
  mod="$(cd "$here/testbin/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)" \
    || die "cannot locate the sigs.k8s.io/kwok module (go list -m in tests/testbin/kwok)"
  local s="$mod/kustomize/stage"
  local files=(
    "$s/node/fast/node-initialize.yaml"
    "$s/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml"
    "$s/pod/fast/pod-ready.yaml"
    "$s/pod/fast/pod-complete.yaml"
    "$s/pod/fast/pod-delete.yaml"
  )
  local f
  for f in "${files[@]}"; do [[ -f "$f" ]] || die "kwok stage missing: $f"; done
  printf '%s\n' "${files[@]}"
}

write_kwok_config() {
  # Our own stage, in addition to kwok's: a kubelet that comes back after its node was
  # NotReady makes its pods Ready again; kwok's pod-ready stage only handles Pending pods, so
  # without this, pods the node lifecycle controller marked NotReady (nodes whose Lease
  # renewals ran late on a loaded machine) would stay NotReady for good. Job pods are left to
  # kwok's pod-complete stage.
  cat >"$dir/stage-pod-ready-again.yaml" <<'EOF'
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: kelvin-pod-ready-again
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: DoesNotExist}
    - {key: '.status.phase', operator: In, values: [Running]}
    - {key: '.metadata.ownerReferences.[].kind', operator: NotIn, values: [Job]}
    - {key: '.status.conditions.[] | select( .type == "Ready" ) | .status', operator: NotIn, values: ['True']}
  delay:
    durationMilliseconds: 10000
    jitterDurationMilliseconds: 30000
  next:
    statusTemplate: |
      conditions:
      - lastTransitionTime: {{ Now | Quote }}
        status: "True"
        type: Ready
EOF
  cat >"$dir/kwok.yaml" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  # Wide pod CIDR (8M addresses): the default /24 runs out after 254 pods.
  cidr: 10.128.0.0/9
  nodeIP: 172.31.255.254
  nodeLeaseDurationSeconds: ${KELVIN_KWOK_LEASE_SECONDS:-40}
  manageAllNodes: false
  manageNodesWithAnnotationSelector: kwok.x-k8s.io/node=fake
  nodePlayStageParallelism: 16
  podPlayStageParallelism: 16
  nodeLeaseParallelism: 16
  podsOnNodeSyncParallelism: 4
EOF
}

# Requests of ServiceAccounts (but kube-system's: the controller-manager's controllers) at
# level Metadata: user, verb, resource, subresource, namespace, name, response code. Nothing
# of anyone else, and no bodies: small enough to leave on for a whole test binary.
write_audit_policy() {
  cat >"$dir/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  userGroups: ["system:serviceaccounts:kube-system"]
- level: Metadata
  userGroups: ["system:serviceaccounts"]
- level: None
EOF
}

# --- Kueue (`up --kueue`) ----------------------------------------------------------------------
# The real Kueue controller manager (sigs.k8s.io/kueue, built by tests/testbin/build.sh) as one
# more supervised component. Everything Kueue needs is made here, in DIR/kueue/:
#   certs/        serving certificate for 127.0.0.1, signed by the cluster's CA (Kueue's internal
#                 cert management is off: no Secret, no cert rotation, no Service)
#   config.yaml   Kueue's Configuration: webhooks on 127.0.0.1:KUEUE_WEBHOOK_PORT, probes on
#                 127.0.0.1:KUEUE_HEALTH_PORT, no leader election, no metrics listener
#   webhooks.yaml Kueue's own webhook manifests (config/components/webhook/manifests.yaml of the
#                 module), rewritten: clientConfig.service -> url https://127.0.0.1:PORT/<path>
#                 + caBundle, the names kustomize's `kueue-` prefix gives them, and the
#                 namespaceSelectors its kustomization patches in
#   etc/          an empty mount point (see kueue_launch)
# Feature gates: TopologyAwareScheduling=true (its default in 0.17, said explicitly), and
# VisibilityOnDemand=false (an aggregated API server on 0.0.0.0:8082 behind an APIService and a
# Service, which a process on 127.0.0.1 cannot be).

kueue_paths() { # -> KUEUE_BIN, KUEUE_MOD (module directory), KUEUE_DIR
  # shellcheck source=testbin/versions.env
  source "$here/testbin/versions.env"
  KUEUE_BIN="$BIN/kueue-${KUEUE_VERSION}/kueue"
  KUEUE_DIR="$dir/kueue"
  KUEUE_MOD="$(cd "$here/testbin/kueue" && go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)" \
    || die "cannot locate the sigs.k8s.io/kueue module (go list -m in tests/testbin/kueue)"
}

kueue_certs() {
  local c="$KUEUE_DIR/certs" p="$dir/pki"
  mkdir -p "$c"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$c/tls.key" -out "$c/tls.csr" -subj "/CN=kueue-webhook" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$c/tls.ext"
  openssl x509 -req -in "$c/tls.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" \
    -set_serial "0x$(openssl rand -hex 12)" -days 3650 -extfile "$c/tls.ext" -out "$c/tls.crt" 2>/dev/null
  rm -f "$c/tls.csr" "$c/tls.ext"
  chmod 600 "$c/tls.key"
}

kueue_config() {
  cat >"$KUEUE_DIR/config.yaml" <<EOF
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
health:
  healthProbeBindAddress: 127.0.0.1:$KUEUE_HEALTH_PORT
metrics:
  bindAddress: "0"
webhook:
  host: 127.0.0.1
  port: $KUEUE_WEBHOOK_PORT
  certDir: $KUEUE_DIR/certs
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
clientConnection:
  qps: 50
  burst: 100
integrations:
  # Jobs, and plain pods (a pod group is a workload that kwok keeps Running: kwok completes
  # Job pods at once). Pods without a kueue.x-k8s.io/queue-name label are left alone.
  frameworks: ["batch/job", "pod"]
EOF
}

# Kueue's webhook manifests with each clientConfig pointing at 127.0.0.1. The module's file
# lists one webhook per `- admissionReviewVersions:` item, each with
#   clientConfig: / service: / name / namespace / path: /<path>
# which becomes `url: https://127.0.0.1:PORT/<path>` and `caBundle`. Webhooks on pods,
# Deployments and StatefulSets get the namespaceSelector of the module's
# config/components/webhook/kustomization.yaml (not in kube-system or kueue-system).
kueue_webhooks() {
  local src="$KUEUE_MOD/config/components/webhook/manifests.yaml" out="$KUEUE_DIR/webhooks.yaml"
  [[ -f "$src" ]] || die "no $src"
  awk -v url="https://127.0.0.1:$KUEUE_WEBHOOK_PORT" -v ca="$(base64 -w0 <"$dir/pki/ca.crt")" '
    /^  name: (mutating|validating)-webhook-configuration$/ { sub(/name: /, "name: kueue-"); print; next }
    /^    service:$/ { in_service = 1; next }
    in_service && /^      (name|namespace): / { next }
    in_service && /^      path: / {
      print "    url: " url $2
      print "    caBundle: " ca
      in_service = 0; rewritten++; next
    }
    /^  name: [mv](pod|deployment|statefulset)\.kb\.io$/ {
      print
      print "  namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, kueue-system]}]}"
      selected++; next
    }
    { print }
    END {
      if (rewritten == 0 || selected != 6) {
        printf "rewrote %d clientConfigs, %d namespaceSelectors (want 6)\n", rewritten, selected > "/dev/stderr"
        exit 1
      }
    }' "$src" >"$out" || die "rewriting $src failed (has its layout changed?)"
  grep -q "service:" "$out" && die "a webhook of $out still names a Service"
  return 0
}

# A kubelet stops the containers of a pod being deleted and reports it terminated; only then
# does Kueue drop its finalizer (kueue.x-k8s.io/managed) from a preempted pod. kwok's fast
# pod-delete stage only deletes, which a finalizer blocks, so such a pod would run on for
# good, holding its node and its namespace's quota. This stage is that kubelet: a pod being
# deleted that still has a finalizer fails with its containers killed (exit 137). Its weight
# makes kwok pick it over pod-delete (weight 0), which then deletes the terminated pod.
kueue_kwok_stage() {
  cat >"$KUEUE_DIR/stage-pod-terminate.yaml" <<'EOF'
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: kelvin-pod-terminate
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: Exists}
    - {key: '.metadata.finalizers', operator: Exists}
    - {key: '.status.phase', operator: In, values: [Pending, Running]}
  weight: 100
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - {lastTransitionTime: {{ $now | Quote }}, status: "False", type: Ready}
      - {lastTransitionTime: {{ $now | Quote }}, status: "False", type: ContainersReady}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated: {exitCode: 137, reason: Error, finishedAt: {{ $now | Quote }}, startedAt: {{ $now | Quote }}}
      {{ end }}
      phase: Failed
EOF
}

# Called by `up --kueue` once the ports are chosen (cluster.env holds them).
kueue_prepare() {
  kueue_paths
  [[ -x "$KUEUE_BIN" ]] || die "missing $KUEUE_BIN (tests/testbin/build.sh builds it)"
  mkdir -p "$KUEUE_DIR/etc"
  kueue_certs
  kueue_config
  kueue_webhooks
  kueue_kwok_stage
}

# Kueue 0.17 with internal cert management off reads its metrics serving certificate from the
# fixed path /etc/kueue/metrics/certs (cmd/kueue/main.go), even with metrics off. So Kueue runs
# in a mount namespace of its own, with an overlay on /etc there (the host's /etc below, a
# tmpfs on DIR/kueue/etc above) holding our certificate at that path: the host's /etc is never
# written, and clusters side by side each have their own. The chain unshare -> bash -> setpriv
# -> kueue is exec all the way, so the supervisor's child is Kueue itself and the leash holds.
kueue_launch() {
  local ns=(unshare --mount --propagation private)
  ((EUID == 0)) || ns=(unshare --user --map-root-user --mount --propagation private)
  # shellcheck disable=SC2016
  "${ns[@]}" -- bash -c '
    set -e
    k="$1"; shift
    mount -t tmpfs -o size=1m,mode=0755 kelvin-kueue "$k/etc"
    mkdir -p "$k/etc/up/kueue/metrics/certs" "$k/etc/work"
    cp "$k/certs/tls.crt" "$k/certs/tls.key" "$k/etc/up/kueue/metrics/certs/"
    mount -t overlay kelvin-kueue -o "lowerdir=/etc,upperdir=$k/etc/up,workdir=$k/etc/work" /etc
    exec "$@"' kueue-ns "$KUEUE_DIR" "${leash[@]}" "$KUEUE_BIN" \
    --config="$KUEUE_DIR/config.yaml" --kubeconfig="$dir/kubeconfig" \
    --feature-gates=TopologyAwareScheduling=true,VisibilityOnDemand=false \
    </dev/null >"$dir/logs/kueue.log" 2>&1 3<&- &
  pids[kueue]=$!
  echo "${pids[kueue]}" >"$dir/pids/kueue"
}

# In the supervisor, once the rest is up: Kueue's CRDs, its namespace, the process, then its
# webhook configurations (only once it serves them: they fail closed), then a server-side
# dry-run create of a ResourceFlavor, which passes through Kueue's webhooks, to prove they answer.
kueue_start() {
  kueue_paths
  local k=("$BIN/kubectl" --kubeconfig "$dir/kubeconfig") crds
  crds="$("$here/testbin/build.sh" --crds)" || { log "tests/testbin/build.sh --crds failed"; exit 1; }
  "${k[@]}" apply --server-side --force-conflicts --field-manager=kelvin-crds \
    -f "$crds/" >/dev/null
  "${k[@]}" wait --for condition=Established --timeout=60s -f "$crds/" >/dev/null
  "${k[@]}" create namespace kueue-system >/dev/null
  kueue_launch
  until_up kueue 90 curl -fsS --max-time 2 "http://127.0.0.1:$KUEUE_HEALTH_PORT/readyz"
  "${k[@]}" apply --server-side --field-manager=kelvin-kueue -f "$KUEUE_DIR/webhooks.yaml" >/dev/null
  cat >"$KUEUE_DIR/probe.yaml" <<'EOF'
apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {name: kelvin-webhook-probe}
EOF
  until_up kueue 60 "${k[@]}" create --dry-run=server -f "$KUEUE_DIR/probe.yaml"
}

# --- the supervisor ------------------------------------------------------------------------

# Runs in its own session (setsid). Starts the components as its children, waits for the stop
# signal (SIGTERM from `down`, or EOF on stdin with --lifeline), stops them and exits.
supervise() {
  local lifeline="$1"
  load_env
  echo "$$" >"$dir/supervisor.pid"
  # Globals, not locals: the traps below run them after `supervise` may have returned.
  declare -gA pids=()
  waiter="" stopping=0 ready=0 lifeline_mode="$lifeline"

  stop_all() {
    ((stopping)) && return 0
    stopping=1
    log "stopping (supervisor $$)"
    # Clients first, then the API server, then etcd: etcd's graceful stop waits for the
    # API server's watch streams, so stopping both at once takes many seconds.
    local group name
    for group in "kueue kwok kube-scheduler kube-controller-manager" kube-apiserver etcd; do
      for name in $group; do
        alive "${pids[$name]:-}" && kill -TERM "${pids[$name]}" 2>/dev/null || true
      done
      local deadline=$((SECONDS + 10))
      for name in $group; do
        while alive "${pids[$name]:-}" && ((SECONDS < deadline)); do sleep 0.05; done
        alive "${pids[$name]:-}" && kill -KILL "${pids[$name]}" 2>/dev/null || true
      done
    done
    alive "$waiter" && kill -TERM "$waiter" 2>/dev/null || true
    rm -f "$dir/supervisor.pid" "$dir/pids/"*
    # The harness's directory goes with it (unless KELVIN_E2E_KEEP is set). A failed startup
    # keeps it: `up` prints the logs and removes it.
    if ((lifeline_mode && ready)) && [[ -z "${KELVIN_E2E_KEEP:-}" ]]; then
      rm -rf "$dir"
    fi
    log "stopped"
  }
  trap 'stop_all; exit 0' TERM INT HUP
  trap 'stop_all' EXIT

  # Components die with the supervisor (PR_SET_PDEATHSIG, kept across exec by setpriv).
  local leash=()
  if setpriv --help 2>/dev/null | grep -q -- --pdeathsig; then
    leash=(setpriv --pdeathsig KILL --)
  else
    log "warning: setpriv --pdeathsig unavailable; components outlive a SIGKILLed supervisor"
  fi
  mkdir -p "$dir/logs" "$dir/pids"
  start() { # name args...
    local name="$1"
    shift
    "${leash[@]}" "$BIN/$name" "$@" </dev/null >"$dir/logs/$name.log" 2>&1 3<&- &
    pids[$name]=$!
    echo "${pids[$name]}" >"$dir/pids/$name"
  }
  until_up() { # name deadline-seconds command...
    local name="$1" deadline=$((SECONDS + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
      alive "${pids[$name]}" || { log "$name exited; see $dir/logs/$name.log"; exit 1; }
      ((SECONDS < deadline)) || { log "$name not healthy in time; see $dir/logs/$name.log"; exit 1; }
      sleep 0.2
    done
  }
  local p="$dir/pki" kc="$dir/kubeconfig"
  local curl_admin=(curl -fsS --max-time 2 --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key")

  start etcd --name=kelvin --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="kelvin=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync=true --auto-compaction-mode=periodic --auto-compaction-retention=5m \
    --quota-backend-bytes=8589934592 --log-level=warn
  until_up etcd 30 curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

  # `up --audit` left a policy: which API calls ServiceAccounts make (tests prove RBAC with it).
  local audit=()
  if [[ -f "$dir/audit-policy.yaml" ]]; then
    audit=(--audit-policy-file="$dir/audit-policy.yaml" --audit-log-path="$dir/audit.log"
      --audit-log-format=json --audit-log-mode=blocking --audit-log-maxsize=0)
  fi
  apiserver_args=(--etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --client-ca-file="$p/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --endpoint-reconciler-type=none --profiling=false "${audit[@]}")
  start kube-apiserver "${apiserver_args[@]}"
  until_up kube-apiserver 90 "${curl_admin[@]}" "https://127.0.0.1:$API_PORT/readyz"
  # Fault injection (`apiserver stop|start`): SIGUSR1 kills the API server (SIGKILL, as a
  # crash), SIGUSR2 starts it again with the same flags on the same etcd.
  trap 'if alive "${pids[kube-apiserver]:-}"; then kill -KILL "${pids[kube-apiserver]}";
        while alive "${pids[kube-apiserver]}"; do sleep 0.05; done; fi
        rm -f "$dir/pids/kube-apiserver"; log "kube-apiserver killed"' USR1
  trap 'alive "${pids[kube-apiserver]:-}" || { start kube-apiserver "${apiserver_args[@]}";
        log "kube-apiserver started again"; }' USR2

  local common=(--kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc"
    --leader-elect=false --bind-address=127.0.0.1)
  start kube-controller-manager "${common[@]}" --secure-port="$KCM_PORT" \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --use-service-account-credentials=true \
    --kube-api-qps=200 --kube-api-burst=400 --concurrent-daemonset-syncs=4 \
    --node-monitor-grace-period="${KELVIN_NODE_MONITOR_GRACE:-2m}"
  start kube-scheduler "${common[@]}" --secure-port="$SCHED_PORT" \
    --kube-api-qps=200 --kube-api-burst=400
  local stages=() f
  while IFS= read -r f; do stages+=("--config=$f"); done < <(kwok_stage_files)
  stages+=("--config=$dir/stage-pod-ready-again.yaml")
  [[ -f "$dir/kueue/stage-pod-terminate.yaml" ]] && stages+=("--config=$dir/kueue/stage-pod-terminate.yaml")
  start kwok --kubeconfig="$kc" --config="$dir/kwok.yaml" "${stages[@]}" \
    --server-address="127.0.0.1:$KWOK_PORT" --v="${KELVIN_KWOK_LOG_LEVEL:-WARN}"

  until_up kube-controller-manager 60 curl -fsSk --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz"
  until_up kube-scheduler 60 curl -fsSk --max-time 2 "https://127.0.0.1:$SCHED_PORT/healthz"
  until_up kwok 60 curl -fsS --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz"
  # The service-account token controller is running once `default` has its ServiceAccount.
  until_up kube-controller-manager 60 "${curl_admin[@]}" \
    "https://127.0.0.1:$API_PORT/api/v1/namespaces/default/serviceaccounts/default"
  if [[ -n "${KUEUE_WEBHOOK_PORT:-}" ]]; then kueue_start; fi
  ready=1
  touch "$dir/ready"
  log "ready (supervisor $$)"

  # Wait for the stop signal. `wait` returns early when a trapped signal arrives.
  if ((lifeline)); then
    "${leash[@]}" cat >/dev/null <&3 &
  else
    "${leash[@]}" sleep infinity </dev/null &
  fi
  waiter=$!
  exec 3<&-
  # `wait` also returns when a trapped signal (USR1/USR2 above) arrives: wait again until the
  # waiter itself ends.
  while alive "$waiter"; do wait "$waiter" || true; done
  exit 0
}

# --- commands ------------------------------------------------------------------------------

cmd_up() {
  local nodes=0 lifeline=0 audit=0 kueue=0
  while (($#)); do
    case "$1" in
      --nodes) nodes="$2"; shift 2 ;;
      --lifeline) lifeline=1; shift ;;
      --audit) audit=1; shift ;;
      --kueue) kueue=1; shift ;;
      *) die "up: unknown argument $1" ;;
    esac
  done
  if alive "$(supervisor_pid)"; then
    die "a cluster is already running in $dir (tests/cluster.sh down --dir $dir)"
  fi
  if [[ -e "$dir" ]]; then
    [[ -f "$dir/.kelvin-cluster" ]] || [[ -z "$(ls -A "$dir")" ]] \
      || die "$dir exists and is not a cluster directory; refusing to reuse it"
    rm -rf "$dir"
  fi
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  touch "$dir/.kelvin-cluster"

  local t0=$SECONDS
  BIN="$("$here/testbin/build.sh")" || die "tests/testbin/build.sh failed"
  local c
  for c in "${components[@]}" kubectl helm; do
    [[ -x "$BIN/$c" ]] || die "missing $BIN/$c"
  done
  gen_pki
  write_kwok_config
  if ((audit)); then write_audit_policy; fi
  # If `up` fails or is interrupted before the cluster is ready, take it down again.
  trap 'log "startup failed; logs:"; tail_logs; cmd_down >/dev/null 2>&1 || true' EXIT
  mkdir -p "$dir/logs"

  # A port found free can be taken before a component binds it: then start again on others.
  local attempt v spid deadline
  for attempt in 1 2 3; do
    for v in ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT SCHED_PORT KWOK_PORT; do free_port "$v"; done
    cat >"$dir/cluster.env" <<EOF
BIN=$BIN
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
API_PORT=$API_PORT
KCM_PORT=$KCM_PORT
SCHED_PORT=$SCHED_PORT
KWOK_PORT=$KWOK_PORT
EOF
    if ((kueue)); then
      free_port KUEUE_WEBHOOK_PORT
      free_port KUEUE_HEALTH_PORT
      printf 'KUEUE_WEBHOOK_PORT=%s\nKUEUE_HEALTH_PORT=%s\n' "$KUEUE_WEBHOOK_PORT" "$KUEUE_HEALTH_PORT" >>"$dir/cluster.env"
    fi
    load_env
    write_kubeconfig
    if ((kueue)); then kueue_prepare; fi
    if ((lifeline)); then
      # fd 3 carries our stdin (the lifeline pipe) into the supervisor's background reader.
      setsid "$self" _supervise --dir "$dir" --lifeline 3<&0 </dev/null >"$dir/logs/supervisor.log" 2>&1 &
    else
      setsid "$self" _supervise --dir "$dir" </dev/null >"$dir/logs/supervisor.log" 2>&1 &
    fi
    spid=$! deadline=$((SECONDS + 180))
    until [[ -f "$dir/ready" ]] || ! alive "$spid"; do
      ((SECONDS < deadline)) || die "control plane not ready after 180 s"
      sleep 0.2
    done
    [[ -f "$dir/ready" ]] && break
    if ((attempt < 3)) && grep -qs "address already in use" "$dir"/logs/*.log; then
      log "a port was taken meanwhile; starting again on other ports"
      rm -rf "${dir:?}/etcd" "${dir:?}/logs/"*
      continue
    fi
    die "supervisor exited during startup"
  done
  trap - EXIT
  log "control plane ready in $((SECONDS - t0)) s ($dir)"

  if ((nodes > 0)); then
    # Its report goes to stderr: stdout is only the exports, for `eval "$(cluster.sh up)"`.
    KUBECONFIG="$dir/kubeconfig" run_fake_nodes create --count "$nodes" --wait >&2 \
      || { cmd_down >/dev/null 2>&1 || true; die "creating $nodes nodes failed"; }
  fi
  print_exports
}

tail_logs() {
  local f
  for f in "$dir"/logs/*.log; do
    [[ -f "$f" ]] || continue
    echo "--- $f" >&2
    tail -n 15 "$f" >&2
  done
}

cmd_down() {
  local spid
  spid="$(supervisor_pid)"
  if alive "$spid"; then
    kill -TERM "$spid" 2>/dev/null || true
    local deadline=$((SECONDS + 25))
    while alive "$spid" && ((SECONDS < deadline)); do sleep 0.1; done
    # Last resort: the whole session/process group the supervisor leads.
    alive "$spid" && kill -KILL -- "-$spid" 2>/dev/null || true
  fi
  # Stray components (supervisor gone without cleaning up): kill what the pid files name,
  # after checking that the pid still runs one of our binaries.
  local f pid
  for f in "$dir"/pids/*; do
    [[ -f "$f" ]] || continue
    pid="$(cat "$f")"
    if alive "$pid" && [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == */testbin/* ]]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [[ -f "$dir/.kelvin-cluster" ]]; then
    rm -rf "$dir"
  fi
  log "down ($dir)"
}

cmd_env() {
  alive "$(supervisor_pid)" && [[ -f "$dir/ready" ]] || die "no running cluster in $dir"
  load_env
  print_exports
}

run_fake_nodes() {
  # One implementation of fake nodes, in Rust (tests/e2e/src/nodes.rs), shared with the tests.
  (cd "$root" && cargo run --quiet -p kelvin-e2e --bin fake-nodes -- "$@")
}

cmd_nodes() {
  if [[ " $* " == *" --help "* || " $* " == *" -h "* || $# -eq 0 ]]; then
    run_fake_nodes "$@"
    return
  fi
  [[ -f "$dir/kubeconfig" ]] || die "no cluster in $dir"
  KUBECONFIG="$dir/kubeconfig" run_fake_nodes "$@"
}

# The third-party CRDs Kelvin writes objects of (Kueue's from sigs.k8s.io/kueue, Volcano's
# HyperNode generated from volcano.sh/apis), for running the operator by hand. Server-side
# apply: Kueue's Workload CRD is too big for kubectl's last-applied annotation.
cmd_crds() {
  (($# == 0)) || die "crds: unknown argument $1"
  [[ -f "$dir/kubeconfig" ]] || die "no cluster in $dir (run: tests/cluster.sh up)"
  load_env
  local crds
  crds="$("$here/testbin/build.sh" --crds)" || die "tests/testbin/build.sh --crds failed"
  local k=("$BIN/kubectl" --kubeconfig "$dir/kubeconfig")
  "${k[@]}" apply --server-side --force-conflicts --field-manager=kelvin-crds -f "$crds"
  "${k[@]}" wait --for condition=Established --timeout=60s -f "$crds"
}

# Fault injection for tests and benchmarks: the API server killed (SIGKILL) and started again
# on the same etcd, by the supervisor (its children die with it). `start` waits for /readyz.
cmd_apiserver() {
  local spid
  spid="$(supervisor_pid)"
  alive "$spid" || die "no running cluster in $dir"
  load_env
  local p="$dir/pki" deadline
  case "${1:-}" in
    stop)
      kill -USR1 "$spid"
      deadline=$((SECONDS + 20))
      while [[ -f "$dir/pids/kube-apiserver" ]]; do
        ((SECONDS < deadline)) || die "kube-apiserver still running 20 s after stop"
        sleep 0.05
      done
      log "kube-apiserver stopped" ;;
    start)
      kill -USR2 "$spid"
      deadline=$((SECONDS + 120))
      until curl -fsS --max-time 2 --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" \
        "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "kube-apiserver not ready 120 s after start; see $dir/logs/kube-apiserver.log"
        sleep 0.1
      done
      log "kube-apiserver ready" ;;
    *) die "usage: apiserver stop|start" ;;
  esac
}

# etcd compaction at its newest revision, after one write of a key of its own (so that the
# revision moves past whatever a watcher has seen): every watch resumed from an older
# resourceVersion then gets 410 Gone and must list again. Prints the compacted revision.
# Through etcd's gRPC gateway (JSON over HTTP on the client port): no etcdctl needed.
cmd_etcd() {
  [[ "${1:-}" == compact ]] || die "usage: etcd compact"
  load_env
  local url="http://127.0.0.1:$ETCD_PORT/v3/kv" rev
  rev="$(curl -fsS --max-time 5 -X POST "$url/put" \
    -d "{\"key\": \"$(printf /kelvin-test/compaction | base64 -w0)\", \"value\": \"$(date +%s | base64 -w0)\"}" |
    sed -n 's/.*"revision":"\([0-9]*\)".*/\1/p')"
  [[ -n "$rev" ]] || die "etcd answered no revision"
  curl -fsS --max-time 60 -X POST "$url/compaction" -d "{\"revision\": \"$rev\", \"physical\": true}" >/dev/null \
    || die "etcd compaction at revision $rev failed"
  log "etcd compacted at revision $rev"
  echo "$rev"
}

cmd_stats() {
  load_env
  local name pid rss total=0
  printf '%-26s %8s %10s\n' COMPONENT PID RSS_MiB
  local shown=("${components[@]}")
  [[ -n "${KUEUE_WEBHOOK_PORT:-}" ]] && shown+=(kueue)
  for name in "${shown[@]}"; do
    pid="$(cat "$dir/pids/$name" 2>/dev/null || true)"
    if alive "$pid"; then
      rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")"
      total=$((total + rss))
      printf '%-26s %8s %10d\n' "$name" "$pid" $((rss / 1024))
    else
      printf '%-26s %8s %10s\n' "$name" - -
    fi
  done
  printf '%-26s %8s %10d\n' total "" $((total / 1024))
  printf 'etcd data dir: %s\n' "$(du -sh "$dir/etcd" 2>/dev/null | cut -f1)"
  local k=("$BIN/kubectl" --kubeconfig "$dir/kubeconfig")
  printf 'nodes: %s (Ready: %s)  pods: %s\n' \
    "$("${k[@]}" get nodes --no-headers 2>/dev/null | wc -l)" \
    "$("${k[@]}" get nodes --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l)" \
    "$("${k[@]}" get pods -A --no-headers 2>/dev/null | wc -l)"
}

main() {
  (($#)) || { usage; exit 2; }
  local cmd="$1"
  shift
  local args=() lifeline=0
  while (($#)); do
    case "$1" in
      --dir) dir="$2"; shift 2 ;;
      --dir=*) dir="${1#--dir=}"; shift ;;
      --lifeline) lifeline=1; args+=("$1"); shift ;;
      *) args+=("$1"); shift ;;
    esac
  done
  case "$cmd" in
    up) cmd_up "${args[@]}" ;;
    down) cmd_down ;;
    env) cmd_env ;;
    nodes) cmd_nodes "${args[@]}" ;;
    crds) cmd_crds "${args[@]}" ;;
    stats) cmd_stats ;;
    apiserver) cmd_apiserver "${args[@]}" ;;
    etcd) cmd_etcd "${args[@]}" ;;
    _supervise) supervise "$lifeline" ;;
    -h | --help | help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
