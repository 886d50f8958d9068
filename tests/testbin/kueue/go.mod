// Pins the Kueue module whose CRDs (config/components/crd/bases/) the tests install.
// Nothing is built from it: build.sh runs `go mod download sigs.k8s.io/kueue`, which checks
// the module zip against go.sum, and copies the CRD YAMLs out of the module cache.
module kelvin.invalid/testbin/kueue

go 1.26.0

require sigs.k8s.io/kueue v0.17.0
