# stamp-operator — the two commands a new user needs:
#   make demo   the operator against a real kube-apiserver and the ARM emulator: examples become Ready, then are deleted
#   make test   every test: formatting, lints, unit, property, corpus, CLI and end-to-end tests
#               (builds the pinned kube-apiserver/etcd first; cached after the first run)
.PHONY: demo plan-examples test build fmt fmt-check clippy crds controlplane emulator-schemas kustomize-base bench image

CARGO ?= cargo

build:
	$(CARGO) build --locked

demo: build controlplane
	deploy/demo.sh

# Offline: plan the examples without a cluster or Azure.
plan-examples: build
	./target/debug/stamp-operator plan -f deploy/examples/globalplane.yaml -f deploy/examples/stamp-westeurope.yaml \
		-f deploy/examples/stamp-northeurope.yaml -f deploy/examples/privateendpointsets.yaml

test: fmt-check clippy controlplane
	$(CARGO) test --locked

fmt:
	$(CARGO) fmt

fmt-check:
	$(CARGO) fmt --check

clippy:
	$(CARGO) clippy --locked --all-targets -- -D warnings

# Regenerate crds/ after changing src/api (a test fails while they differ).
crds: build
	./target/debug/stamp-operator crd --out-dir crds
	cp crds/*.missioncritical.dev.yaml charts/stamp-operator/crds/

# Re-render deploy/kustomize/base from the Helm chart (a test fails while they differ).
kustomize-base: controlplane
	deploy/kustomize/render.sh

# Scale benchmark (not part of `make test`): writes target/bench/results.json and results.md.
# BENCH_ARGS="--sizes 10,100,1000 --factor 0.1 --resyncs 3" (Azure's clock 10x; 0.01 is 100x)
BENCH_ARGS ?= --sizes 10,100
bench: controlplane
	$(CARGO) bench --locked --bench scale -- $(BENCH_ARGS)

# The container image (needs a Docker engine; not used by the tests).
image:
	docker build --build-arg VERSION=$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1) -t stamp-operator:dev .

# Pinned kube-apiserver, kubectl and etcd built from the Go module proxy (cached in target/).
controlplane:
	tests/controlplane/build.sh

# Re-derive the emulator's request schemas from the official specs in ../shared/azure-specs.
emulator-schemas: build
	./target/debug/stamp-operator derive-emulator-schemas --specs ../shared/azure-specs > src/emulator/schemas.json
