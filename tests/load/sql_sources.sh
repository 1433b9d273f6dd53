#!/usr/bin/env bash
# SQL sources at volume: a 1,000,000-row table in the machine's PostgreSQL and MariaDB, served
# through a release gateway with masking on (pseudonym, partial, clear), paged by key
# (`Link: rel="next"`, 100,000 rows a page) as CSV, against the database's own client dumping
# the same rows as CSV, side by side in one run; and the gateway's peak RSS while it streams.
#
#   tests/load/sql_sources.sh [rows=1000000] [page=100000]
#
# Needs: psql, mariadb (the machine's clients), curl, jq. Not a CI test: read the figures as
# ratios within one run. Every page must answer 200 (the status counts are printed; any other
# status voids the run).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${1:-1000000}
PAGE=${2:-100000}
WORK=$(mktemp -d /tmp/sluice-sql-load.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
PG="psql -X -q -h 127.0.0.1 -U postgres -d test"
MY="mariadb -h 127.0.0.1 -u root test"

cargo build --release -q
# A CA and certificates: the demo's (stopped once they exist).
SLUICE_LOG=warn ./target/release/sluice demo --dir "$WORK/demo" >"$WORK/demo.log" 2>&1 &
DEMO=$!
for _ in $(seq 1 150); do [ -f "$WORK/demo/demo.json" ] && break; sleep 0.2; done
kill $DEMO; wait $DEMO 2>/dev/null || true
D="$WORK/demo"

echo "== loading $ROWS rows into PostgreSQL and MariaDB"
$PG <<SQL
DROP TABLE IF EXISTS bench_meters;
CREATE TABLE bench_meters (id bigint PRIMARY KEY, district text NOT NULL, reading double precision,
  active boolean, owner_name text, phone text);
INSERT INTO bench_meters SELECT i, (ARRAY['Huangpu','Xuhui','Pudong','Jing''an'])[1 + i % 4],
  (i % 10000) / 8.0, i % 3 = 0, 'Owner ' || i, '138' || lpad((i % 100000000)::text, 8, '0')
  FROM generate_series(1, $ROWS) i;
ANALYZE bench_meters;
SQL
$MY <<SQL
DROP TABLE IF EXISTS bench_meters;
CREATE TABLE bench_meters (id bigint PRIMARY KEY, district varchar(32) NOT NULL, reading double,
  active boolean, owner_name varchar(64), phone varchar(16)) CHARACTER SET utf8mb4;
INSERT INTO bench_meters SELECT seq, ELT(1 + seq % 4, 'Huangpu', 'Xuhui', 'Pudong', 'Jing''an'),
  (seq % 10000) / 8.0, seq % 3 = 0, CONCAT('Owner ', seq), CONCAT('138', LPAD(seq % 100000000, 8, '0'))
  FROM seq_1_to_${ROWS};
ANALYZE TABLE bench_meters;
SQL

PORT=$((20000 + RANDOM % 20000))
ADMIN=$((PORT + 1))
TABLE='name = "bench_meters"
key = "id"
columns = { id = "integer", district = "text", reading = "float", active = "bool", owner_name = "text", phone = "text" }'
cat >"$WORK/gateway.toml" <<TOML
[gateway]
id = "bench"
state_dir = "$WORK/state"

[listeners.data]
addr = "127.0.0.1:$PORT"
cert = "$D/certs/gateway.pem"
key = "$D/certs/gateway.key"
client_ca = "$D/ca/ca.pem"

[listeners.admin]
addr = "127.0.0.1:$ADMIN"

[limits]
max_limit = $PAGE
max_upstream_bytes = 10000000000

[sources.meters-pg]
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/test"
statement_timeout_ms = 600000

[sources.meters-pg.table]
$TABLE

[sources.meters-my]
kind = "mysql"
url = "mysql://root@127.0.0.1:3306/test"
statement_timeout_ms = 600000

[sources.meters-my.table]
$TABLE
TOML
for ds in meters-pg meters-my; do
  cat >>"$WORK/gateway.toml" <<TOML

[[datasets]]
id = "$ds"
title = "Meters"
grades = { personal = "non_anonymous_non_sensitive" }
fields = [
  { name = "id", scan = false, grades = { personal = "none" } },
  { name = "district", scan = false, grades = { personal = "none" } },
  { name = "reading", scan = false, grades = { personal = "none" } },
  { name = "active", scan = false, grades = { personal = "none" } },
  { name = "owner_name", scan = false },
  { name = "phone", scan = false },
]

[[licences]]
id = "l-$ds"
licensee = "acme-insurance"
dataset = "$ds"
scenario = "bench"
valid_from = "2025-01-01T00:00:00Z"
valid_until = "2035-01-01T00:00:00Z"
rate = { per_second = 1000, burst = 1000 }
quota = { requests_per_day = 1000000, records_per_day = 100000000 }
fields.id = { rule = "clear" }
fields.district = { rule = "clear" }
fields.reading = { rule = "clear" }
fields.active = { rule = "clear" }
fields.owner_name = { rule = "pseudonym" }
fields.phone = { rule = "partial", first = 3, last = 4 }
TOML
done
./target/release/sluice check --connect --config "$WORK/gateway.toml"
SLUICE_LOG=warn ./target/release/sluice gateway --config "$WORK/gateway.toml" >"$WORK/gateway.log" 2>&1 &
GW=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$GW/status"; }
# Pages through a dataset by its Link headers; prints rows, seconds, status counts, peak RSS.
through_gateway() { # dataset
  local ds=$1 url="/v1/datasets/$1/records?limit=$PAGE&format=csv" rows=0 peak idle
  idle=$(rss_kb); peak=$idle
  : >"$WORK/$ds.status"
  ( while kill -0 $GW 2>/dev/null; do rss_kb >>"$WORK/$ds.rss"; sleep 0.1; done ) &
  local sampler=$!
  local start end
  start=$(date +%s.%N)
  while [ -n "$url" ]; do
    curl -s --cacert "$D/ca/ca.pem" --cert "$D/certs/acme-insurance.pem" --key "$D/certs/acme-insurance.key" \
      -H 'Sluice-Scenario: bench' -D "$WORK/h" -o "$WORK/page.csv" -w '%{http_code}\n' \
      "https://localhost:$PORT$url" >>"$WORK/$ds.status"
    rows=$((rows + $(wc -l <"$WORK/page.csv") - 1))
    url=$(grep -i '^link:' "$WORK/h" | sed 's/^[Ll]ink: <\([^>]*\)>.*/\1/' | tr -d '\r' || true)
  done
  end=$(date +%s.%N)
  kill $sampler 2>/dev/null || true
  peak=$(sort -n "$WORK/$ds.rss" | tail -1)
  echo "$rows $(echo "$end - $start" | bc) $idle $peak"
}

direct_pg() {
  local start end n
  start=$(date +%s.%N)
  n=$($PG -c "\\copy (SELECT id, district, reading, active, owner_name, phone FROM bench_meters ORDER BY id) TO STDOUT CSV HEADER" | wc -l)
  end=$(date +%s.%N)
  echo "$((n - 1)) $(echo "$end - $start" | bc)"
}
direct_my() {
  local start end n
  start=$(date +%s.%N)
  n=$($MY --batch -e "SELECT id, district, reading, active, owner_name, phone FROM bench_meters ORDER BY id" | wc -l)
  end=$(date +%s.%N)
  echo "$((n - 1)) $(echo "$end - $start" | bc)"
}

report() { # label direct gateway status_file
  read -r drows dsecs <<<"$2"
  read -r grows gsecs idle peak <<<"$3"
  local statuses
  statuses=$(sort "$4" | uniq -c | awk '{printf "%s×%s ", $1, $2}')
  printf "%-10s direct %8d rows %6.2fs %9.0f rows/s | gateway %8d rows %6.2fs %9.0f rows/s | ratio %.2f× | RSS idle %d MB peak %d MB (+%d MB) | pages: %s\n" \
    "$1" "$drows" "$dsecs" "$(echo "$drows / $dsecs" | bc -l)" "$grows" "$gsecs" "$(echo "$grows / $gsecs" | bc -l)" \
    "$(echo "($grows / $gsecs) / ($drows / $dsecs)" | bc -l)" $((idle / 1024)) $((peak / 1024)) $(((peak - idle) / 1024)) "$statuses"
  if grep -qv '^200$' "$4"; then echo "VOID: a page did not answer 200"; fi
  if [ "$grows" != "$drows" ]; then echo "VOID: the gateway served $grows rows, the database $drows"; fi
}

echo "== PostgreSQL: psql \\copy vs the gateway"
if [ -n "${PROFILE:-}" ]; then # PROFILE=1: perf profile of the gateway while it serves PostgreSQL
  perf record -F 999 -g -p $GW -o "$WORK/perf.data" >/dev/null 2>&1 &
  PERF=$!
fi
DIRECT_PG=$(direct_pg)
GATEWAY_PG=$(through_gateway meters-pg)
if [ -n "${PROFILE:-}" ]; then
  kill -INT $PERF; wait $PERF || true
  perf report -i "$WORK/perf.data" --no-children --percent-limit 1 --stdio -g none 2>/dev/null | grep -v '^$' | grep -v '^#' | head -40 || true
fi
report postgres "$DIRECT_PG" "$GATEWAY_PG" "$WORK/meters-pg.status"
echo "== MariaDB: mariadb --batch vs the gateway"
report mariadb "$(direct_my)" "$(through_gateway meters-my)" "$WORK/meters-my.status"
head -3 "$WORK/page.csv"

$PG -c "DROP TABLE bench_meters"
$MY -e "DROP TABLE bench_meters"
