#!/usr/bin/env bash
# Memory under clients that never read (issue 11, item 7), against a release gateway process:
#
#   tests/load/stalled_clients.sh [h2_connections=5] [h2_streams=100] [h1_connections=500]
#
# 1. A gateway (its own process) in front of nginx serving the demo's hydrant register from a
#    file; baseline RSS, then a well-behaved client's throughput alone (oha, 8 connections,
#    limit=100, 8 s).
# 2. H2 connections × streams held at a zero receive window plus H1 HTTP/1.1 connections that
#    read nothing, each asking for limit=10000 (about 1.1 MB of masked output): peak RSS while
#    they are held, and the well-behaved client's throughput meanwhile.
# 3. The attackers close; RSS is sampled for 60 s.
#
# Goals (exit 1 when missed): peak RSS under 256 MB; attacked throughput ≥ 90 % of the
# unattacked; RSS within 25 % of the baseline within 60 s after the attackers close. Every oha
# run prints its status distribution; a run with any non-200 is void (exit 1).
# Needs: nginx (nginx-light), oha, python3 with h2 (pip install h2==4.1.0). Not a CI test:
# the figures are the machine's. Loopback only; every started process is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
H2C=${1:-5}
H2S=${2:-100}
H1C=${3:-500}
WORK=$(mktemp -d /tmp/sluice-stall.XXXXXX)
chmod 755 "$WORK" # nginx workers read www/
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

command -v oha >/dev/null || cargo install --locked oha
command -v nginx >/dev/null || (apt-get update -qq && apt-get install -y -qq nginx-light)
python3 -c 'import h2' 2>/dev/null || pip install -q h2==4.1.0

cargo build --release -q -p sluice
BIN=$(realpath "${CARGO_TARGET_DIR:-target}/release/sluice")
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The source: the demo register (13,000 hydrants) as a file nginx streams from disk.
SRC_PORT=$(port)
"$BIN" sample-source --addr "127.0.0.1:$SRC_PORT" >/dev/null 2>&1 &
SRC_PID=$!
mkdir -p "$WORK/www"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$SRC_PORT/hydrants?limit=13000" -o "$WORK/www/hydrants" && break; sleep 0.1; done
kill "$SRC_PID"
NGX_PORT=$(port)
cat >"$WORK/nginx.conf" <<NGX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$NGX_PORT;
    root $WORK/www;
    location / { default_type application/json; }
  }
}
NGX
nginx -c "$WORK/nginx.conf" -p "$WORK"

# PKI, config, licence.
"$BIN" certs init-ca --dir "$WORK/ca" >/dev/null
"$BIN" certs issue gateway --dir "$WORK/ca" --dns localhost --ip 127.0.0.1 --out "$WORK/certs" --name gateway >/dev/null
"$BIN" certs issue licensee --dir "$WORK/ca" --id acme --out "$WORK/certs" --name acme >/dev/null
CA=$WORK/ca/root.pem
GW_PORT=$(port)
ADMIN_PORT=$(port)
cat >"$WORK/licences.toml" <<'TOML'
[[licences]]
id = "l1"
licensee = "acme"
dataset = "hydrants"
scenario = "load-test"
valid_from = "2025-01-01T00:00:00Z"
valid_until = "2035-01-01T00:00:00Z"
fields.id = { rule = "clear" }
fields.district = { rule = "clear" }
fields.adopter_mobile = { rule = "partial", first = 3, last = 4 }
fields.notes = { rule = "clear" }
rate = { per_second = 100000, burst = 100000 }
TOML
cat >"$WORK/gateway.toml" <<TOML
licences_file = "licences.toml"

[gateway]
id = "stall-test"
state_dir = "state"

[listeners.data]
addr = "127.0.0.1:$GW_PORT"
cert = "certs/gateway.pem"
key = "certs/gateway.key"
client_ca = "ca/root.pem"

[listeners.admin]
addr = "127.0.0.1:$ADMIN_PORT"

[limits]
# Held for the whole measurement (the default, 30 s, would start cutting them off).
write_stall_timeout_ms = 120000

[sources.hydrants]
kind = "http"
url = "http://127.0.0.1:$NGX_PORT/hydrants"

[[datasets]]
id = "hydrants"
title = "Fire hydrant register"
owner = "Shanghai Fire and Rescue"
update_frequency = "daily"
grades = { personal = "non_anonymous_non_sensitive" }
fields = [
  { name = "id" },
  { name = "district" },
  { name = "adopter_mobile", grades = { personal = "non_anonymous_non_sensitive" } },
  { name = "notes" },
]
TOML
(cd "$WORK" && SLUICE_LOG=warn exec "$BIN" gateway --config gateway.toml >"$WORK/gateway.log" 2>&1) &
GW_PID=$!
PIDS+=("$GW_PID")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$GW_PID/status"; }

URL="https://127.0.0.1:$GW_PORT/v1/datasets/hydrants/records"
TLS=(--cacert "$CA" --cert "$WORK/certs/acme.pem" --key "$WORK/certs/acme.key" -H "Sluice-Scenario: load-test")
VOID=0
good() { # name
  oha --no-tui -z 8s -c 8 --output-format json "${TLS[@]}" "$URL?limit=100" >"$WORK/$1.json"
  local rps statuses
  rps=$(jq '.summary.requestsPerSec|floor' "$WORK/$1.json")
  statuses=$(jq -c '.statusCodeDistribution' "$WORK/$1.json")
  echo "$1: $rps req/s, statuses $statuses" >&2
  jq -e '(.statusCodeDistribution|keys) == ["200"]' "$WORK/$1.json" >/dev/null || VOID=1
  echo "$rps"
}

oha --no-tui -z 3s -c 8 "${TLS[@]}" "$URL?limit=100" >/dev/null # warm-up
sleep 2
BASE=$(rss)
echo "baseline RSS: $BASE MB"
ALONE=$(good alone)

mkfifo "$WORK/hold"
python3 tests/load/stalled_clients.py --addr "127.0.0.1:$GW_PORT" --ca "$CA" \
  --cert "$WORK/certs/acme.pem" --key "$WORK/certs/acme.key" --path "/v1/datasets/hydrants/records?limit=10000" \
  --header "sluice-scenario: load-test" --h2-connections "$H2C" --h2-streams "$H2S" \
  --h1-connections "$H1C" <"$WORK/hold" >"$WORK/attack.log" 2>&1 &
ATTACK_PID=$!
PIDS+=("$ATTACK_PID")
exec 3>"$WORK/hold"
for _ in $(seq 600); do grep -q '^opened' "$WORK/attack.log" && break; kill -0 "$ATTACK_PID" 2>/dev/null || { cat "$WORK/attack.log"; exit 1; }; sleep 0.1; done
echo "attack: $(head -1 "$WORK/attack.log") (h2 streams, h1 connections), each limit=10000"
PEAK=$(rss)
# (fd 3 closed in the sampler, or it would hold the attackers' stdin open)
( exec 3>&-; while kill -0 "$ATTACK_PID" 2>/dev/null; do rss >>"$WORK/rss.txt"; sleep 0.2; done ) &
PIDS+=("$!")
sleep 2
ATTACKED=$(good attacked 3>&-)
PEAK=$(sort -n "$WORK/rss.txt" | tail -1)
exec 3>&- # the attackers close every socket
wait "$ATTACK_PID" || true
tail -n +2 "$WORK/attack.log"

AFTER=0
RECOVERED=
for s in $(seq 60); do
  sleep 1
  AFTER=$(rss)
  if [ -z "$RECOVERED" ] && [ "$AFTER" -le $((BASE * 125 / 100)) ]; then RECOVERED=$s; fi
done
RATIO=$(echo "$ATTACKED / $ALONE" | bc -l | cut -c1-5)
echo
echo "| | figure | goal |"
echo "|---|---|---|"
echo "| RSS before | $BASE MB | |"
echo "| peak RSS with the attack held | $PEAK MB | < 256 MB |"
echo "| well-behaved client alone / attacked | $ALONE / $ATTACKED req/s = $RATIO | ≥ 0.9 |"
echo "| RSS 60 s after the attackers closed | $AFTER MB (within 25 % after ${RECOVERED:-never} s) | ≤ $((BASE * 125 / 100)) MB within 60 s |"
STALLED=$(grep -c '"write-stalled"' "$WORK"/state/audit/*.jsonl || true)
echo "audit: $(cat "$WORK"/state/audit/*.jsonl | wc -l) records, $STALLED write-stalled"
FAIL=0
[ "$VOID" = 0 ] || { echo "VOID: a well-behaved run had non-200 statuses"; FAIL=1; }
[ "$PEAK" -lt 256 ] || { echo "MISSED: peak RSS"; FAIL=1; }
[ "$(echo "$RATIO >= 0.9" | bc -l)" = 1 ] || { echo "MISSED: throughput under attack"; FAIL=1; }
[ -n "$RECOVERED" ] || { echo "MISSED: RSS did not fall back"; FAIL=1; }
echo "raw results in $WORK"
exit $FAIL
