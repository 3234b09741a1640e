#!/usr/bin/env bash
# Builds the pinned test control plane (kube-apiserver, kubectl, etcd) and the ecosystem tools the
# packaging tests use (helm; kstatus-check and lua-health, thin commands over kstatus and
# gopher-lua) from the Go module proxy into target/controlplane/bin. Cached: a second run with unchanged go.sum files does nothing,
# and Go's build cache makes a rebuild after a pin change incremental.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$root/target/controlplane/bin"
stamp="$bin/.inputs"
mkdir -p "$bin"

tools="$root/tests/tools"
inputs="$(cat "$0" "$here"/{kube,etcd}/go.{mod,sum} "$tools"/helm/go.{mod,sum} "$tools"/status/go.{mod,sum} \
  "$tools"/status/cmd/*/main.go | sha256sum | cut -d' ' -f1)"
all_built() {
  for b in kube-apiserver kubectl etcd helm kstatus-check lua-health; do [ -x "$bin/$b" ] || return 1; done
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ] && all_built; then
  echo "control plane up to date in $bin"
  exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-mod=readonly
# Without these the binaries report v0.0.0 and kubectl warns about version skew.
kube_version="$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/kube/go.mod")"
minor="$(echo "$kube_version" | cut -d. -f2)"
pkg=k8s.io/component-base/version
ldflags="-X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
(cd "$here/kube" && go build -trimpath -ldflags "$ldflags" -o "$bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
(cd "$here/kube" && go build -trimpath -ldflags "$ldflags" -o "$bin/kubectl" k8s.io/kubernetes/cmd/kubectl)
(cd "$here/etcd" && go build -trimpath -o "$bin/etcd" go.etcd.io/etcd/server/v3)
helm_version="$(sed -n 's/^require helm.sh\/helm\/v3 \(v[0-9.]*\)$/\1/p' "$tools/helm/go.mod")"
# As helm's Makefile does: the Kubernetes version `helm template` and `helm lint` assume is that of
# the client-go helm is built with (without it they assume 1.20).
k8s_minor="$(sed -n 's/^\tk8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$tools/helm/go.mod")"
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$helm_version"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ldflags="$helm_ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
(cd "$tools/helm" && go build -trimpath -ldflags "$helm_ldflags" -o "$bin/helm" helm.sh/helm/v3/cmd/helm)
(cd "$tools/status" && go build -trimpath -o "$bin/kstatus-check" ./cmd/kstatus-check \
  && go build -trimpath -o "$bin/lua-health" ./cmd/lua-health)
echo "$inputs" > "$stamp"
"$bin/kube-apiserver" --version
# sed, not head: head leaves early, and under pipefail etcd's SIGPIPE fails the build (exit 141).
"$bin/etcd" --version | sed -n 1p
"$bin/helm" version --short
