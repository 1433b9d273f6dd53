#!/usr/bin/env bash
# Load harness: the same upstream reached directly, through nginx as an mTLS reverse proxy,
# and through sluice (licence check, rate limit, masking, audit on), side by side in one run.
#
#   tests/load/run.sh [duration_s=20] [connections=32] [limit=100]
#
# Needs: nginx (apt-get install nginx-light), oha (cargo install --locked oha), jq.
# Not a CI test: figures depend on the machine; read them as ratios within one run.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-20}
CONN=${2:-32}
LIMIT=${3:-100}
WORK=$(mktemp -d /tmp/sluice-load.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true' EXIT

command -v oha >/dev/null || cargo install --locked oha
command -v nginx >/dev/null || (apt-get update -qq && apt-get install -y -qq nginx-light)
command -v jq >/dev/null || apt-get install -y -qq jq

cargo build --release -q
SLUICE_LOG=warn ./target/release/sluice demo --dir "$WORK/demo" >"$WORK/demo.log" 2>&1 &
DEMO_PID=$!
for _ in $(seq 1 100); do [ -f "$WORK/demo/demo.json" ] && break; sleep 0.2; done
M="$WORK/demo/demo.json"
CA=$(jq -r .ca "$M")
URL=$(jq -r '.gateways[0].url' "$M" | sed 's/localhost/127.0.0.1/')
SRC=$(jq -r .source_url "$M")
CERT=$(jq -r '.licensees[0].cert' "$M")
KEY=$(jq -r '.licensees[0].key' "$M")
NGX_PORT=$((20000 + RANDOM % 20000))
SRC_HOST=$(echo "$SRC" | sed 's|http://||; s|/.*||')
cat >"$WORK/nginx.conf" <<NGX
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream src { server $SRC_HOST; keepalive 64; }
  server {
    listen 127.0.0.1:$NGX_PORT ssl;
    ssl_certificate $WORK/demo/certs/gateway.pem;
    ssl_certificate_key $WORK/demo/certs/gateway.key;
    ssl_client_certificate $CA;
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://src;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGX
SRC_PATH=$(echo "$SRC" | sed 's|http://[^/]*||')
nginx -c "$WORK/nginx.conf" -p "$WORK"

# CPU seconds used so far by a process (user + system), from /proc.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# CPU seconds of the nginx master and workers.
nginx_cpu_s() { local sum=0 p; for p in $(pgrep -f "nginx: " || true); do sum=$(echo "$sum + $(cpu_s "$p")" | bc -l); done; echo "$sum"; }
run() { # name url [extra oha args...]
  local name=$1 url=$2; shift 2
  local demo0 nginx0 demo1 nginx1
  demo0=$(cpu_s "$DEMO_PID"); nginx0=$(nginx_cpu_s)
  oha --no-tui -z "${DUR}s" -c "$CONN" --output-format json "$@" "$url" >"$WORK/$name.json"
  demo1=$(cpu_s "$DEMO_PID"); nginx1=$(nginx_cpu_s)
  # CPU seconds per 1,000 requests: the demo process (gateway + registry + sample source)
  # and nginx; the direct run's demo figure is the sample source's own share.
  local n
  n=$(jq '[.statusCodeDistribution[]] | add // 0' "$WORK/$name.json")
  echo "$name $(echo "($demo1 - $demo0) * 1000 / ($n + 0.000001)" | bc -l) $(echo "($nginx1 - $nginx0) * 1000 / ($n + 0.000001)" | bc -l)" >>"$WORK/cpu"
  jq -r --arg n "$name" '"\($n)\t\(.summary.requestsPerSec|floor) req/s\tp50 \(.latencyPercentiles.p50*1000|.*100|floor/100) ms\tp99 \(.latencyPercentiles.p99*1000|.*100|floor/100) ms\tstatuses \(.statusCodeDistribution|tojson)"' "$WORK/$name.json"
  # A run with any status but 200 is void.
  jq -e '(.statusCodeDistribution|keys) == ["200"]' "$WORK/$name.json" >/dev/null || { echo "VOID: $name had non-200 responses"; VOID=1; }
}
VOID=0
TLS=(--cacert "$CA" --cert "$CERT" --key "$KEY")
echo "# saturation: $CONN connections, ${DUR}s each, limit=$LIMIT records per request"
run direct "$SRC?limit=$LIMIT"
run nginx "https://127.0.0.1:$NGX_PORT$SRC_PATH?limit=$LIMIT" "${TLS[@]}"
run sluice "$URL/v1/datasets/fire-hydrants/records?limit=$LIMIT" "${TLS[@]}" -H "Sluice-Scenario: fire-hydrant-adoption"
echo "# below saturation: 200 req/s, 8 connections"
CONN=8 run direct_q "$SRC?limit=$LIMIT" -q 200
CONN=8 run nginx_q "https://127.0.0.1:$NGX_PORT$SRC_PATH?limit=$LIMIT" -q 200 "${TLS[@]}"
CONN=8 run sluice_q "$URL/v1/datasets/fire-hydrants/records?limit=$LIMIT" -q 200 "${TLS[@]}" -H "Sluice-Scenario: fire-hydrant-adoption"
rps() { jq .summary.requestsPerSec "$WORK/$1.json"; }
p99() { jq .latencyPercentiles.p99 "$WORK/$1.json"; }
echo "# ratios"
echo "throughput sluice/nginx: $(echo "$(rps sluice) / $(rps nginx)" | bc -l | cut -c1-5)"
echo "p99 added over direct at 200 req/s: sluice $(echo "($(p99 sluice_q) - $(p99 direct_q))*1000" | bc -l | cut -c1-6) ms, nginx $(echo "($(p99 nginx_q) - $(p99 direct_q))*1000" | bc -l | cut -c1-6) ms"
cpu() { awk -v n="$1" -v c="$2" '$1 == n {printf "%.3f", $c}' "$WORK/cpu"; }
echo "CPU s per 1,000 requests at saturation: sluice gateway $(echo "$(cpu sluice 2) - $(cpu direct 2)" | bc -l | cut -c1-6) (demo process $(cpu sluice 2) minus the sample source's $(cpu direct 2)), nginx $(cpu nginx 3)"
echo "raw results in $WORK"
[ "$VOID" = 0 ] || echo "at least one run is void: do not quote these figures"
trap - EXIT
kill $(jobs -p) 2>/dev/null || true
kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
