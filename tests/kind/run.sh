#!/usr/bin/env bash
# Runs Kelvin's end-to-end suite (cargo test -p kelvin-e2e) against a kind cluster instead of
# the processes tests/cluster.sh starts.
#
#   tests/kind/run.sh [cargo test arguments...]
#
# Needs: a container engine kind supports (Docker or Podman), kind, kubectl, cargo, and network
# access to pull the kindest/node image and kwok's release manifests and image. None of these
# exist on Kelvin's CI machines, so this script is not run there (docs/testing.md).
#
# Environment:
#   KIND_CLUSTER_NAME   cluster name (default kelvin-e2e)
#   KIND_NODE_IMAGE     kindest/node image to use (default: the one of your kind release)
#   KELVIN_KIND_KEEP=1  keep the cluster afterwards (default: delete it)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=../testbin/versions.env
source "$root/tests/testbin/versions.env"

name="${KIND_CLUSTER_NAME:-kelvin-e2e}"
work="$(mktemp -d)"
kubeconfig="$work/kubeconfig"

for tool in kind kubectl cargo; do
  command -v "$tool" >/dev/null || { echo "kind/run.sh: $tool not found" >&2; exit 1; }
done

cleanup() {
  if [[ -z "${KELVIN_KIND_KEEP:-}" ]]; then
    kind delete cluster --name "$name" >/dev/null 2>&1 || true
  else
    echo "kind/run.sh: kept cluster $name; kubeconfig: $kubeconfig" >&2
    return
  fi
  rm -rf "$work"
}
trap cleanup EXIT

kind create cluster --name "$name" --config "$here/kind-config.yaml" \
  --kubeconfig "$kubeconfig" --wait 180s ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
export KUBECONFIG="$kubeconfig"

# kwok in the cluster, at the version the local control plane uses: its controller
# (managing nodes annotated kwok.x-k8s.io/node=fake) and the "fast" stages (nodes become Ready,
# pods Running), from kwok's release.
release="https://github.com/kubernetes-sigs/kwok/releases/download/v${KWOK_VERSION}"
kubectl apply -f "$release/kwok.yaml"
kubectl apply -f "$release/stage-fast.yaml"
kubectl -n kube-system rollout status deployment/kwok-controller --timeout=180s

# kubectl and helm for the tests: KELVIN_TESTBIN if set, else from PATH.
cd "$root"
KELVIN_E2E_KUBECONFIG="$kubeconfig" cargo test -p kelvin-e2e "$@"
