#!/usr/bin/env bash
# Start a loopback staging stack in DIR and print the path of its config:
#   DynamoDB Local (AWS's own emulator: the lock and the operation record),
#   moto (EC2), the simulator's Kubernetes façade (k3s-sim), and Debian's
#   real prometheus scraping the façade every second.
#
#   tests/stack/up.sh DIR            # prints DIR/config.toml
#   . DIR/env                        # test credentials and the endpoints
#   k3s-autoscaler -c DIR/config.toml            # the console on the real adapters
#   tests/stack/down.sh DIR
#
# Everything listens on 127.0.0.1 only, on free ports. Tunables (env):
#   STACK_WORKERS (3) STACK_SCENARIO (flash-sale) STACK_SPEED (20)
#   STACK_SCALE (0.6) STACK_BOOT_DELAY (5s) STACK_CLUSTER (staging)
#   K3SA_BIN, K3SA_SIM_BIN: binaries to use (default: built with cargo)
set -euo pipefail
dir="${1:?usage: tests/stack/up.sh DIR}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/scripts/peers.sh"
install_peers
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
log() { echo "stack: $*" >&2; }

workers="${STACK_WORKERS:-3}"
scenario="${STACK_SCENARIO:-flash-sale}"
speed="${STACK_SPEED:-20}"
scale="${STACK_SCALE:-0.6}"
boot="${STACK_BOOT_DELAY:-5s}"
cluster="${STACK_CLUSTER:-staging}"
prometheus_bin="${K3SA_PROMETHEUS_BIN:-$(command -v prometheus)}"
if [ -z "${K3SA_BIN:-}" ] || [ -z "${K3SA_SIM_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/k3s-autoscaler/target}"
  log "building the binaries"
  (cd "$root" && cargo build --quiet --bins)
  K3SA_BIN="${K3SA_BIN:-$CARGO_TARGET_DIR/debug/k3s-autoscaler}"
  K3SA_SIM_BIN="${K3SA_SIM_BIN:-$CARGO_TARGET_DIR/debug/k3s-sim}"
fi

# 1. moto (EC2) and DynamoDB Local (the state table)
moto_port=$(free_port)
start_moto "$moto_port" "$dir/moto.log"
echo "$moto_pid" > "$dir/moto.pid"
moto="http://127.0.0.1:$moto_port"
ddb_port=$(free_port)
start_dynamodb_local "$ddb_port" "$dir/dynamodb.log"
echo "$ddb_pid" > "$dir/dynamodb.pid"
ddb="http://127.0.0.1:$ddb_port"

# The engine reaches them as it would reach AWS: no endpoint in the config,
# the SDK's per-service endpoint variables in the environment.
cat > "$dir/env" <<ENV
# The emulators accept any credentials; these are not secrets.
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL_DYNAMODB=$ddb
export AWS_ENDPOINT_URL_EC2=$moto
ENV
. "$dir/env"

# 2. the K3s server and the first workers, tagged as the tool expects
"$K3SA_VENV/bin/python" - "$moto" "$cluster" "$workers" <<'PY'
import sys, boto3
url, cluster, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
def run(count, tags):
    ec2.run_instances(ImageId="ami-1e749f67", MinCount=count, MaxCount=count, InstanceType="t3.large",
                      TagSpecifications=[{"ResourceType": "instance",
                                          "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])
run(1, {"k3s-autoscaler/role": "master", "Name": "k3s-server"})
if n:
    run(n, {"k3s-autoscaler/cluster": cluster, "k3s-autoscaler/role": "worker"})
PY

# 3. the façade
"$K3SA_SIM_BIN" --ec2-endpoint "$moto" --cluster "$cluster" --scenario "$scenario" --speed "$speed" \
  --scale "$scale" --boot-delay "$boot" --ready-file "$dir/sim.url" >"$dir/sim.log" 2>&1 &
echo $! > "$dir/sim.pid"
for _ in $(seq 1 100); do [ -s "$dir/sim.url" ] && break; sleep 0.1; done
sim="$(cat "$dir/sim.url")"
wait_http "$sim/healthz" 10

# 4. Prometheus, scraping the façade every second, and the engine's own
#    metrics at the address in DIR/metrics.addr (start it with
#    --metrics-addr "$(cat DIR/metrics.addr)"; down until then)
prom_port=$(free_port)
metrics_addr="127.0.0.1:$(free_port)"
echo "$metrics_addr" > "$dir/metrics.addr"
cat > "$dir/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: k3s-sim
    honor_labels: true
    static_configs:
      - targets: ["${sim#http://}"]
  - job_name: k3s-autoscaler
    static_configs:
      - targets: ["$metrics_addr"]
YML
"$prometheus_bin" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$dir/prometheus.log" 2>&1 &
echo $! > "$dir/prometheus.pid"
prom="http://127.0.0.1:$prom_port"
wait_http "$prom/-/ready" 30

# 5. the kubeconfig and the config for the real adapters
cat > "$dir/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
  - name: staging
    cluster:
      server: $sim
users:
  - name: staging
    user: {}
contexts:
  - name: staging
    context: {cluster: staging, user: staging}
current-context: staging
KC
cat > "$dir/config.toml" <<TOML
# Staging stack: everything on 127.0.0.1; timings shortened so a flash sale
# scales up and back down within a couple of minutes.
[cluster]
name = "$cluster"

[aws]
region = "us-east-1"

[dynamodb]
table = "k3s-autoscaler-$cluster"

[ec2]
ami = "ami-1e749f67"
instance_types = ["t3.large"]

[prometheus]
url = "$prom"
timeout = "2s"
max_staleness = "30s"
cpu_query = "100 * (1 - avg(rate(node_cpu_seconds_total{mode=\\"idle\\",k3s_role=\\"worker\\"}[15s])))"
node_cpu_query = "100 * (1 - avg by (node) (rate(node_cpu_seconds_total{mode=\\"idle\\",k3s_role=\\"worker\\"}[15s])))"

[kubernetes]
kubeconfig = "$dir/kubeconfig"

[policy]
pending_for = "10s"
idle_for = "20s"
scale_up_cooldown = "10s"
scale_down_cooldown = "20s"
max_workers = 8

[drain]
timeout = "60s"

[lock]
lease = "30s"
skew_margin = "2s"

[engine]
interval = "2s"
join_timeout = "2m"

[notify]
TOML

"$K3SA_BIN" init -c "$dir/config.toml" >&2

# 6. ready when the first workers are Ready nodes and their CPU has settled
#    (pods start on the first node to join: a short spike the engine must not
#    mistake for load)
for _ in $(seq 1 300); do
  ready=$(python3 - "$sim" "$prom" <<'PY' 2>/dev/null || echo 0
import json, sys, urllib.parse, urllib.request
sim, prom = sys.argv[1], sys.argv[2]
nodes = json.load(urllib.request.urlopen(sim + "/api/v1/nodes"))["items"]
ready = sum(1 for n in nodes for c in n["status"]["conditions"] if c["type"] == "Ready" and c["status"] == "True")
q = urllib.parse.quote('100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[15s])))')
data = json.load(urllib.request.urlopen(prom + "/api/v1/query?query=" + q))["data"]["result"]
print(ready if data and float(data[0]["value"][1]) < 60 else 0)
PY
)
  [ "$ready" -ge "$workers" ] && break
  sleep 0.2
done
log "dynamodb-local $ddb · moto $moto · k3s-sim $sim · prometheus $prom · $workers workers Ready"
echo "$dir/config.toml"
