#!/usr/bin/env bash
# Renders the Helm chart with its defaults into deploy/kustomize/base/stamp-operator.yaml and
# copies crds/ into deploy/kustomize/base/crds.yaml (kustomize loads nothing outside the base), so
# the kustomize base, the chart and crds/ are one source. tests/packaging.rs checks they agree.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
helm="${HELM:-$root/target/controlplane/bin/helm}"
{
  echo "# Rendered from charts/stamp-operator by deploy/kustomize/render.sh; do not edit."
  "$helm" template stamp-operator "$root/charts/stamp-operator" --namespace stamp-system --skip-crds
} > "$root/deploy/kustomize/base/stamp-operator.yaml"
{
  echo "# Copied from crds/ by deploy/kustomize/render.sh; do not edit."
  for crd in "$root"/crds/*.yaml; do
    echo "---"
    cat "$crd"
  done
} > "$root/deploy/kustomize/base/crds.yaml"
