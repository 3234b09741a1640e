#!/usr/bin/env bash
# make demo: a real kube-apiserver, the ARM emulator with Azure's latencies sped up, and the
# operator; applies deploy/examples/, shows the stamps converging, prints what Azure holds,
# then deletes everything and checks nothing leaked. KEEP=1 leaves it all running.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="$root/target/debug/stamp-operator"
kubectl_bin="$root/target/controlplane/bin/kubectl"
factor="${LATENCY_FACTOR:-0.01}"
work="$(mktemp -d -t stamp-demo.XXXXXX)"
pids=()
finish() {
  code=$?
  if [ "${KEEP:-0}" = "1" ] && [ "$code" = "0" ]; then
    echo
    echo "Left running (KEEP=1). Point kubectl at it with:"
    echo "  export KUBECONFIG=$work/cp/kubeconfig"
    echo "ARM emulator: $arm   (inventory: curl $arm/_emulator/resources)"
    echo "Stop everything with: kill ${pids[*]}"
    trap - EXIT
    exit 0
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  exit "$code"
}
trap finish EXIT
k() { "$kubectl_bin" --kubeconfig "$work/cp/kubeconfig" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== control plane (kube-apiserver $("$root/target/controlplane/bin/kube-apiserver" --version | cut -d' ' -f2) + etcd)"
tests/controlplane/start.sh "$work/cp" >"$work/cp.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 240); do [ -f "$work/cp/ready" ] && break; sleep 0.5; done
[ -f "$work/cp/ready" ] || { echo "control plane did not start; see $work" >&2; exit 1; }
echo "== helm install stamp-operator charts/stamp-operator (CRDs, ServiceAccount, least-privilege RBAC, Lease role)"
export HELM_CACHE_HOME="$work/helm/cache" HELM_CONFIG_HOME="$work/helm/config" HELM_DATA_HOME="$work/helm/data"
"$root/target/controlplane/bin/helm" --kubeconfig "$work/cp/kubeconfig" install stamp-operator charts/stamp-operator \
  --namespace stamp-system --create-namespace >/dev/null
k wait --for condition=established crd --all --timeout=60s >/dev/null
k create namespace prod >/dev/null
# The operator runs out of process, as the chart's ServiceAccount: exactly the chart's RBAC.
token="$(k create token stamp-operator -n stamp-system --duration=12h)"
sed '/^users:/,$d' "$work/cp/kubeconfig" > "$work/operator.kubeconfig"
cat >> "$work/operator.kubeconfig" <<KUBECONFIG
users:
- name: stamp-operator
  user:
    token: $token
contexts:
- name: operator
  context: {cluster: test, user: stamp-operator}
current-context: operator
KUBECONFIG

port="$(free_port)"
arm="http://127.0.0.1:$port"
echo "== ARM emulator on $arm (Azure's latencies x $factor)"
echo "   seeded with what exists before the operator: PaaS services, AKS's load balancers and the PLS AKS made"
"$bin" emulator --listen "127.0.0.1:$port" --latency-factor "$factor" --seed-examples >"$work/emulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do grep -q "listening" "$work/emulator.log" && break; sleep 0.1; done
grep -q "listening" "$work/emulator.log" || { cat "$work/emulator.log" >&2; exit 1; }

seeded=$(curl -sf "$arm/_emulator/resources" | python3 -c 'import json,sys; print("\n".join(sorted(r["id"].lower() for r in json.load(sys.stdin)["value"])))')

echo "== operator (as system:serviceaccount:stamp-system:stamp-operator, leader of Lease stamp-system/stamp-operator)"
KUBECONFIG="$work/operator.kubeconfig" POD_NAME=demo "$bin" run --arm-endpoint "$arm" --credential static --token demo \
  --poll-seconds 2 --inline-wait-seconds 5 --min-poll-seconds 0.2 --drain-seconds 3 --metrics-addr 127.0.0.1:0 \
  --leader-election-lease stamp-system/stamp-operator >"$work/operator.log" 2>&1 &
pids+=($!)

echo "== kubectl apply -f deploy/examples/"
k apply -f deploy/examples/
ready=0
for i in $(seq 1 75); do
  sleep 4
  echo "-- after $((i * 4))s"
  k get globalplanes,stamps,privateendpointsets -A
  if k wait --for=condition=Ready globalplanes,stamps,privateendpointsets --all -A --timeout=1s >/dev/null 2>&1; then ready=1; break; fi
done
echo
echo "== kubectl get globalplanes,stamps,privateendpointsets -o wide"
k get globalplanes,stamps,privateendpointsets -A -o wide
echo
echo "== Azure (emulator) inventory, created by the operator"
curl -sf "$arm/_emulator/resources" | python3 -c '
import json, sys
seeded = set(sys.argv[1].split())
for r in json.load(sys.stdin)["value"]:
    if r["id"].lower() not in seeded:
        print("%-10s %-58s %s" % (r["provisioningState"], r["type"], r["id"].rsplit("/", 1)[1]))
' "$seeded"
curl -sf "$arm/_emulator/stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("ARM requests:", s["requests"], "by method:", s["byMethod"], "throttled:", s["throttled"])'
if [ "$ready" != "1" ]; then
  echo "not everything became Ready; operator log: $work/operator.log" >&2
  exit 1
fi
[ "${KEEP:-0}" = "1" ] && exit 0
echo
echo "== kubectl delete -f deploy/examples/"
k delete -f deploy/examples/ --wait=true --timeout=300s
left=$(curl -sf "$arm/_emulator/resources" | python3 -c 'import json,sys; seeded=set(sys.argv[1].split()); print(sum(1 for r in json.load(sys.stdin)["value"] if r["id"].lower() not in seeded))' "$seeded")
echo "resources the operator created that are left in Azure: $left"
[ "$left" = "0" ]
