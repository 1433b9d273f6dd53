# Shared setup of the load scripts (sourced by run.sh and growth.sh; not run on its own).
#
# Starts, in $WORK:
#   * nginx serving the demo's hydrant records as static JSON files (the upstream: "direct"),
#     one per size in $SIZES (1k 10k 100k 10m 1g), and the same nginx as an mTLS reverse proxy
#     in front of them ("nginx"), HTTP/1.1 and HTTP/2;
#   * a release gateway process ("sluice") with one dataset per size reading the same files
#     through an HTTP source, and a local licence with the full policy: masking (decimals,
#     month, partial, pseudonym), a non-open field dropped, free text scanned, rate limit,
#     quota and the durable audit log.
# Only the gateway runs in the gateway process (no registry, no sample source), so its CPU and
# RSS are the gateway's own.
#
# Needs: nginx (apt-get install nginx-light), oha (cargo install --locked oha), jq, curl, bc,
# python3.

command -v oha >/dev/null || cargo install --locked oha
command -v nginx >/dev/null || (apt-get update -qq && apt-get install -y -qq nginx-light)
command -v jq >/dev/null || apt-get install -y -qq jq

WORK=$(mktemp -d /tmp/sluice-load.XXXXXX)
chmod 755 "$WORK" # nginx's workers read the files as another user
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$WORK/www"
}
trap cleanup EXIT

# SLUICE_BIN: another build to measure (e.g. a copy of an earlier one), instead of this tree's.
if [ -z "${SLUICE_BIN:-}" ]; then cargo build --release -q; fi
BIN=${SLUICE_BIN:-./target/release/sluice}

# Certificates and 20,000 hydrant records from the demo (stopped once it has written them).
SLUICE_LOG=warn $BIN demo --dir "$WORK/demo" >"$WORK/demo.log" 2>&1 &
DEMO=$!
for _ in $(seq 1 150); do [ -f "$WORK/demo/demo.json" ] && break; sleep 0.2; done
M="$WORK/demo/demo.json"
curl -fs "$(jq -r .source_url "$M")?limit=20000" >"$WORK/records.json"
kill $DEMO; wait $DEMO 2>/dev/null || true
D="$WORK/demo"
CA=$(jq -r .ca "$M")
CERT=$(jq -r '.licensees[0].cert' "$M")
KEY=$(jq -r '.licensees[0].key' "$M")
LICENSEE=$(jq -r '.licensees[0].id' "$M")

# The upstream files: records repeated until each reaches its size. RECORDS[size] is the
# number of records in it (the page size asked of the gateway).
declare -A RECORDS
mkdir -p "$WORK/www"
python3 - "$WORK/records.json" "$WORK/www" ${SIZES:-1k 10k 100k 10m 1g} >"$WORK/records.count" <<'PY'
import json, sys
recs = [json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() for r in json.load(open(sys.argv[1]))]
units = {"k": 1000, "m": 1000_000, "g": 1000_000_000}
for size in sys.argv[3:]:
    target = int(size[:-1]) * units[size[-1]]
    n, total = 0, 2
    with open(f"{sys.argv[2]}/h{size}.json", "wb", buffering=1 << 20) as f:
        f.write(b"[")
        while True:
            r = recs[n % len(recs)]
            if n and total + len(r) + 1 > target:
                break
            if n:
                f.write(b",")
            f.write(r)
            total += len(r) + (1 if n else 0)
            n += 1
        f.write(b"]")
    print(size, n)
PY
while read -r size n; do RECORDS[$size]=$n; done <"$WORK/records.count"

UP_PORT=$((20000 + RANDOM % 10000))
NGX_PORT=$((UP_PORT + 1))
GW_PORT=$((UP_PORT + 2))
ADMIN_PORT=$((UP_PORT + 3))
cat >"$WORK/nginx.conf" <<NGX
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  default_type application/json;
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$UP_PORT;
    keepalive_requests 1000000;
    root $WORK/www;
  }
  server {
    listen 127.0.0.1:$NGX_PORT ssl http2;
    keepalive_requests 1000000;
    ssl_certificate $D/certs/gateway.pem;
    ssl_certificate_key $D/certs/gateway.key;
    ssl_client_certificate $CA;
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_max_temp_file_size 0;
    }
  }
}
NGX
nginx -c "$WORK/nginx.conf" -p "$WORK"

cat >"$WORK/gateway.toml" <<TOML
[gateway]
id = "load"
state_dir = "$WORK/state"

[listeners.data]
addr = "127.0.0.1:$GW_PORT"
cert = "$D/certs/gateway.pem"
key = "$D/certs/gateway.key"
client_ca = "$D/ca/ca.pem"

[listeners.admin]
addr = "127.0.0.1:$ADMIN_PORT"

[limits]
max_limit = 100000000
max_upstream_bytes = 10000000000
TOML
for size in "${!RECORDS[@]}"; do
  cat >>"$WORK/gateway.toml" <<TOML

[sources.hydrants-$size]
kind = "http"
url = "http://127.0.0.1:$UP_PORT/h$size.json"
format = "json"
response_timeout_ms = 60000
read_timeout_ms = 60000

[[datasets]]
id = "hydrants-$size"
title = "Fire hydrant register ($size)"
grades = { personal = "non_anonymous_non_sensitive" }
fields = [
  { name = "id", scan = false, grades = { personal = "none" } },
  { name = "district", scan = false, grades = { personal = "none" } },
  { name = "street", grades = { personal = "none" } },
  { name = "latitude", scan = false, grades = { personal = "none" } },
  { name = "longitude", scan = false, grades = { personal = "none" } },
  { name = "status", scan = false, grades = { personal = "none" } },
  { name = "last_inspection", scan = false },
  { name = "adopter_name" },
  { name = "adopter_mobile" },
  { name = "adopter_id_number", grades = { personal = "non_anonymous_sensitive" } },
  { name = "notes", scan = true, grades = { personal = "none" } },
]

[[licences]]
id = "lic-$size"
licensee = "$LICENSEE"
dataset = "hydrants-$size"
scenario = "load"
valid_from = "2025-01-01T00:00:00Z"
valid_until = "2035-01-01T00:00:00Z"
rate = { per_second = 1000000, burst = 1000000 }
quota = { requests_per_day = 1000000000, records_per_day = 100000000000 }
fields.id = { rule = "clear" }
fields.district = { rule = "clear" }
fields.street = { rule = "clear" }
fields.latitude = { rule = "decimals", places = 3 }
fields.longitude = { rule = "decimals", places = 3 }
fields.status = { rule = "clear" }
fields.last_inspection = { rule = "month" }
fields.adopter_name = { rule = "pseudonym" }
fields.adopter_mobile = { rule = "partial", first = 3, last = 4 }
fields.notes = { rule = "clear" }
TOML
done
$BIN check --config "$WORK/gateway.toml" >/dev/null
SLUICE_LOG=warn $BIN gateway --config "$WORK/gateway.toml" >"$WORK/gateway.log" 2>&1 &
GW=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null && break; sleep 0.1; done

TLS=(--cacert "$CA" --cert "$CERT" --key "$KEY")
# The three paths to the file of a size.
url_direct() { echo "http://127.0.0.1:$UP_PORT/h$1.json"; }
url_nginx() { echo "https://127.0.0.1:$NGX_PORT/h$1.json"; }
url_sluice() { echo "https://127.0.0.1:$GW_PORT/v1/datasets/hydrants-$1/records?limit=${RECORDS[$1]}"; }

# CPU seconds used so far by a process (user + system), from /proc.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat" 2>/dev/null || echo 0; }
nginx_pids() { pgrep -f "nginx: (master|worker)" | tr '\n' ' '; }
nginx_cpu_s() { local sum=0 p; for p in $(nginx_pids); do sum=$(echo "$sum + $(cpu_s "$p")" | bc -l); done; echo "$sum"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
nginx_rss_kb() { local sum=0 p; for p in $(nginx_pids); do sum=$((sum + $(rss_kb "$p"))); done; echo "$sum"; }

# Samples the gateway's and nginx's RSS every 100 ms into $WORK/rss.<name> until stopped.
sample_rss() { # name
  while :; do echo "$(rss_kb "$GW") $(nginx_rss_kb)" >>"$WORK/rss.$1"; sleep 0.1; done
}
peak() { # name column → MB
  awk -v c="$2" 'BEGIN {m = 0} $c > m {m = $c} END {printf "%d", m / 1024}' "$WORK/rss.$1"
}

VOID=0
# Whether a status distribution is all 200s; marks the run void otherwise (call it in the
# script's own shell, not in a command substitution).
check_statuses() { [[ $1 =~ ^\{\"200\":[0-9]+\}$ ]] || VOID=1; }
# One oha run: prints "req/s p50_ms p99_ms MB/s cpu_s_per_1000 statuses".
load() { # name path size connections [extra oha args...]
  local name=$1 path=$2 size=$3 conns=$4; shift 4
  local url extra=() c0 c1 n
  url=$("url_$path" "$size")
  [ "$path" = direct ] || extra=("${TLS[@]}")
  [ "$path" = sluice ] && extra+=(-H "Sluice-Scenario: load")
  case $path in sluice) c0=$(cpu_s "$GW") ;; nginx) c0=$(nginx_cpu_s) ;; *) c0=0 ;; esac
  sample_rss "$name" &
  local sampler=$!
  oha --no-tui -z "${DUR}s" -c "$conns" --output-format json "${extra[@]}" "$@" "$url" >"$WORK/$name.json"
  kill $sampler; wait $sampler 2>/dev/null || true
  case $path in sluice) c1=$(cpu_s "$GW") ;; nginx) c1=$(nginx_cpu_s) ;; *) c1=0 ;; esac
  n=$(jq '[.statusCodeDistribution[]] | add // 0' "$WORK/$name.json")
  jq -r --arg cpu "$(echo "($c1 - $c0) * 1000 / ($n + 0.000001)" | bc -l)" \
    '"\(.summary.requestsPerSec|floor) \(.latencyPercentiles.p50*1000) \(.latencyPercentiles.p99*1000) \(.summary.sizePerSec/1000000) \($cpu) \(.statusCodeDistribution|tojson)"' \
    "$WORK/$name.json"
}
