#!/usr/bin/env bash
# Builds the real control-plane binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok, helm) from the Go modules pinned beside this
# script, into a cache outside the repository, and prints that directory.
# Only missing binaries are built; set KELVIN_TESTBIN to choose the directory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"
bin="${KELVIN_TESTBIN:-${XDG_CACHE_HOME:-$HOME/.cache}/kelvin/testbin/$key}"
mkdir -p "$bin"

log() { echo "testbin: $*" >&2; }
# Two cores: -p 2 keeps peak memory of the big compile units bounded.
GOFLAGS_BUILD=(-p 2 -trimpath)
export CGO_ENABLED=0

build_k8s() {
  local missing=()
  for t in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [[ -x "$bin/$t" ]] || missing+=("k8s.io/kubernetes/cmd/$t")
  done
  ((${#missing[@]})) || return 0
  log "building ${missing[*]} v$K8S_VERSION (cold: tens of minutes on 2 cores)"
  # Without these, /version reports v0.0.0-master and Helm's kubeVersion checks fail.
  local minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
  local ldf="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf+=" -X '$pkg.gitVersion=v$K8S_VERSION' -X '$pkg.gitMajor=1' -X '$pkg.gitMinor=$minor'"
    ldf+=" -X '$pkg.gitTreeState=clean' -X '$pkg.gitCommit=kelvin-testbin'"
    ldf+=" -X '$pkg.buildDate=1970-01-01T00:00:00Z'"
  done
  local t0=$SECONDS
  (cd "$here/k8s" && go build "${GOFLAGS_BUILD[@]}" -ldflags "$ldf" -o "$bin/" "${missing[@]}")
  log "built ${#missing[@]} Kubernetes binaries in $((SECONDS - t0)) s"
}

build_one() { # dir package output-name
  [[ -x "$bin/$3" ]] && return 0
  log "building $3 from $2"
  local t0=$SECONDS
  (cd "$here/$1" && go build "${GOFLAGS_BUILD[@]}" -ldflags "-s -w" -o "$bin/$3" "$2")
  log "built $3 in $((SECONDS - t0)) s"
}

build_one etcd go.etcd.io/etcd/server/v3 etcd
build_one kwok sigs.k8s.io/kwok/cmd/kwok kwok
build_one helm helm.sh/helm/v3/cmd/helm helm
build_k8s
echo "$bin"
