#!/usr/bin/env bash
# Starts a throwaway control plane — etcd and kube-apiserver on loopback, ephemeral ports, RBAC on —
# in STATE_DIR (default: a new temporary directory), writes STATE_DIR/kubeconfig (admin) and
# STATE_DIR/ready, then waits. On exit (SIGTERM, SIGINT, failure, or its parent dying) it stops
# every process it started, by PID. SIGUSR1 restarts the API server (etcd keeps the data); the
# file STATE_DIR/restarts counts completed restarts.
#
#   tests/controlplane/start.sh [STATE_DIR]      # foreground; Ctrl-C stops everything
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${CONTROLPLANE_BIN:-$root/target/controlplane/bin}"
state="${1:-$(mktemp -d -t stamp-cp.XXXXXX)}"
mkdir -p "$state"
parent=$PPID
pids=()

stop() {
  local code=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -f "$state/ready"
  exit "$code"
}
trap stop EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

for tool in "$bin/etcd" "$bin/kube-apiserver" "$bin/kubectl"; do
  [ -x "$tool" ] || { echo "missing $tool: run tests/controlplane/build.sh" >&2; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
etcd_client=$(free_port); etcd_peer=$(free_port); api_port=$(free_port)

# Certificates: a CA, the API server's serving cert for 127.0.0.1, an admin client cert
# (system:masters), and the service-account signing key.
pki="$state/pki"; mkdir -p "$pki"
openssl_quiet() { openssl "$@" >/dev/null 2>&1; }
openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=stamp-test-ca" -keyout "$pki/ca.key" -out "$pki/ca.crt"
openssl_quiet req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$pki/san.ext"
openssl_quiet x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 -extfile "$pki/san.ext" -out "$pki/apiserver.crt"
openssl_quiet req -newkey rsa:2048 -nodes -subj "/CN=admin/O=system:masters" -keyout "$pki/admin.key" -out "$pki/admin.csr"
# X.509 v3 (extensions) for every leaf: rustls, which the operator uses, refuses v1 certificates.
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' > "$pki/client.ext"
openssl_quiet x509 -req -in "$pki/admin.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 -extfile "$pki/client.ext" -out "$pki/admin.crt"
openssl_quiet genrsa -out "$pki/sa.key" 2048
openssl_quiet rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

"$bin/etcd" --name default --data-dir "$state/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "default=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync --log-level error \
  >"$state/etcd.log" 2>&1 &
pids+=($!); echo "$!" > "$state/etcd.pid"

start_apiserver() {
  "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_client" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" --client-ca-file "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" --service-cluster-ip-range 10.0.0.0/24 \
    --authorization-mode RBAC --enable-priority-and-fairness=false \
    >>"$state/kube-apiserver.log" 2>&1 &
  api_pid=$!; echo "$api_pid" > "$state/kube-apiserver.pid"
}
start_apiserver
pids+=("$api_pid")
apiserver_index=$((${#pids[@]} - 1))

cat > "$state/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
KUBECONFIG

for _ in $(seq 1 240); do
  if "$bin/kubectl" --kubeconfig "$state/kubeconfig" get --raw /readyz >/dev/null 2>&1; then
    touch "$state/ready"
    echo "control plane ready: KUBECONFIG=$state/kubeconfig"
    # Stay up while the parent lives; the EXIT trap stops etcd and the API server.
    restart=0; restarts=0
    trap 'restart=1' USR1
    while kill -0 "$parent" 2>/dev/null; do
      if [ "$restart" = 1 ]; then
        restart=0
        kill "$api_pid"; wait "$api_pid" 2>/dev/null || true
        start_apiserver
        pids[$apiserver_index]=$api_pid
        until "$bin/kubectl" --kubeconfig "$state/kubeconfig" get --raw /readyz >/dev/null 2>&1; do
          kill -0 "$api_pid" 2>/dev/null || { echo "the restarted API server died" >&2; exit 1; }
          sleep 0.2
        done
        restarts=$((restarts + 1)); echo "$restarts" > "$state/restarts"
      fi
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "process $pid died" >&2; exit 1; }; done
      sleep 1
    done
    exit 0
  fi
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited during startup; logs in $state" >&2; tail -n 20 "$state"/*.log >&2; exit 1; }
  done
  sleep 0.5
done
echo "control plane not ready after 120 s; logs in $state" >&2
exit 1
