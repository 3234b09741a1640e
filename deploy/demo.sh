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
k apply -f crds/ >/dev/null
k wait --for condition=established crd --all --timeout=60s >/dev/null
k create namespace prod >/dev/null

port="$(free_port)"
arm="http://127.0.0.1:$port"
echo "== ARM emulator on $arm (Azure's latencies x $factor)"
"$bin" emulator --listen "127.0.0.1:$port" --latency-factor "$factor" >"$work/emulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -sf "$arm/_emulator/stats" >/dev/null && break; sleep 0.1; done

sub=6f1c1b2e-3d4a-4b5c-8d9e-0a1b2c3d4e5f
put() {
  local answer
  answer=$(curl -s -w '\n%{http_code}' -X PUT -H "Authorization: Bearer demo" -H "content-type: application/json" "$arm/subscriptions/$sub/resourceGroups/$1?api-version=$2" -d "$3")
  case "${answer##*$'\n'}" in 2*) ;; *) echo "seeding $1 failed: $answer" >&2; return 1 ;; esac
}
settle() { # waits until the resource's provisioningState is Succeeded
  for _ in $(seq 1 300); do
    state=$(curl -sf -H "Authorization: Bearer demo" "$arm/subscriptions/$sub/resourceGroups/$1?api-version=$2" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("properties",{}).get("provisioningState",""))' || true)
    [ "$state" = "Succeeded" ] && return 0
    sleep 0.2
  done
  echo "seed $1 did not settle" >&2; return 1
}
echo "== seeding what exists before the operator: PaaS services, AKS load balancers and the PLS AKS made"
for g in rg-prod-weu rg-prod-neu rg-prod-data mc-weu-blue mc-neu-blue; do put "$g" 2024-03-01 '{"location":"westeurope"}'; done
for t in rg-prod-weu/providers/Microsoft.KeyVault/vaults/kv-prod-weu rg-prod-neu/providers/Microsoft.KeyVault/vaults/kv-prod-neu \
         rg-prod-data/providers/Microsoft.ContainerRegistry/registries/acrprod rg-prod-data/providers/Microsoft.DocumentDB/databaseAccounts/cosmos-prod \
         rg-prod-weu/providers/Microsoft.EventHub/namespaces/evh-prod-weu rg-prod-neu/providers/Microsoft.EventHub/namespaces/evh-prod-neu \
         rg-prod-weu/providers/Microsoft.Storage/storageAccounts/stprodweu rg-prod-neu/providers/Microsoft.Storage/storageAccounts/stprodneu; do
  put "$t" 2023-01-01 '{"location":"westeurope","properties":{}}'
done
lb='{"location":"@LOC@","properties":{"frontendIPConfigurations":[{"name":"ingress","properties":{"privateIPAddress":"@IP@"@SUBNET@}}]}}'
put mc-weu-blue/providers/Microsoft.Network/loadBalancers/kubernetes-internal 2024-05-01 "$(echo "$lb" | sed 's/@LOC@/westeurope/; s/@IP@/10.10.8.196/; s/@SUBNET@//')"
aks_vnet=mc-neu-blue/providers/Microsoft.Network/virtualNetworks/aks-vnet
put "$aks_vnet" 2024-05-01 '{"location":"northeurope","properties":{"addressSpace":{"addressPrefixes":["10.224.0.0/16"]},"subnets":[{"name":"pls","properties":{"addressPrefix":"10.224.1.0/24","privateLinkServiceNetworkPolicies":"Disabled"}}]}}'
settle "$aks_vnet" 2024-05-01
subnet="/subscriptions/$sub/resourceGroups/$aks_vnet/subnets/pls"
put mc-neu-blue/providers/Microsoft.Network/loadBalancers/kubernetes-internal 2024-05-01 "$(echo "$lb" | sed "s|@LOC@|northeurope|; s|@IP@|10.224.1.10|; s|@SUBNET@|,\"subnet\":{\"id\":\"$subnet\"}|")"
settle mc-neu-blue/providers/Microsoft.Network/loadBalancers/kubernetes-internal 2024-05-01
put mc-neu-blue/providers/Microsoft.Network/privateLinkServices/pls-ingress 2024-05-01 "{\"location\":\"northeurope\",\"properties\":{\"loadBalancerFrontendIpConfigurations\":[{\"id\":\"/subscriptions/$sub/resourceGroups/mc-neu-blue/providers/Microsoft.Network/loadBalancers/kubernetes-internal/frontendIPConfigurations/ingress\"}],\"ipConfigurations\":[{\"name\":\"nat\",\"properties\":{\"subnet\":{\"id\":\"$subnet\"}}}]}}"
settle mc-neu-blue/providers/Microsoft.Network/privateLinkServices/pls-ingress 2024-05-01
seeded=$(curl -sf "$arm/_emulator/resources" | python3 -c 'import json,sys; print("\n".join(sorted(r["id"].lower() for r in json.load(sys.stdin)["value"])))')

echo "== operator"
KUBECONFIG="$work/cp/kubeconfig" "$bin" run --arm-endpoint "$arm" --credential static --token demo --poll-seconds 2 --inline-wait-seconds 5 \
  --min-poll-seconds 0.2 --drain-seconds 3 --metrics-addr 127.0.0.1:0 >"$work/operator.log" 2>&1 &
pids+=($!)

# The examples reach PaaS in a data group the operator does not own.
mkdir -p "$work/examples"
for f in deploy/examples/*.yaml; do
  sed 's#rg-prod-global/providers/Microsoft.ContainerRegistry#rg-prod-data/providers/Microsoft.ContainerRegistry#; s#rg-prod-global/providers/Microsoft.DocumentDB#rg-prod-data/providers/Microsoft.DocumentDB#' "$f" > "$work/examples/$(basename "$f")"
done
echo "== kubectl apply -f deploy/examples/"
k apply -f "$work/examples/"
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
k delete -f "$work/examples/" --wait=true --timeout=300s
left=$(curl -sf "$arm/_emulator/resources" | python3 -c 'import json,sys; seeded=set(sys.argv[1].split()); print(sum(1 for r in json.load(sys.stdin)["value"] if r["id"].lower() not in seeded))' "$seeded")
echo "resources the operator created that are left in Azure: $left"
[ "$left" = "0" ]
