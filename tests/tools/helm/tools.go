//go:build tools

// Pins helm, built from the Go module proxy for the chart tests (`helm lint`, `helm template`,
// `helm install` into the test control plane).
package tools

import _ "helm.sh/helm/v3/cmd/helm"
