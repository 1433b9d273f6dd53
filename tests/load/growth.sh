#!/usr/bin/env bash
# How cost grows (issue 12, goal 4): throughput and RSS of direct / nginx / sluice as the
# connections grow (1, 8, 32, 128, 512; 10 KB responses) and as the response grows (1 KB,
# 10 KB, 100 KB at 32 connections; 10 MB at 4; 1 GB streamed by one client), side by side in
# one run, HTTP/1.1. RSS is the peak sampled every 100 ms during the run (the gateway process
# alone; nginx's master and workers summed).
#
#   tests/load/growth.sh [duration_s=8]
#
# Setup: tests/load/lib.sh. Every run's status distribution is printed; a run with any status
# but 200 is void. Not a CI test: read the figures as ratios within one run.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-8}
SIZES="1k 10k 100k 10m 1g"
source tests/load/lib.sh

echo "# $(uptime | sed 's/.*load/load/'); ${DUR}s per run; gateway RSS idle $(($(rss_kb "$GW") / 1024)) MB"
row() { # label size conns
  local label=$1 size=$2 conns=$3 path rps mbs statuses out=""
  for path in direct nginx sluice; do
    rm -f "$WORK/rss.$label-$path"
    read -r rps _ _ mbs _ statuses <<<"$(load "$label-$path" "$path" "$size" "$conns")"
    check_statuses "$statuses"
    out+=$(printf "| %d req/s %.0f MB/s " "$rps" "$mbs")
    [ "$path" = nginx ] && out+=$(printf "RSS %d MB " "$(peak "$label-$path" 2)")
    [ "$path" = sluice ] && out+=$(printf "RSS %d MB " "$(peak "$label-$path" 1)")
    out+="$statuses "
  done
  printf "%-6s %5s conns %s\n" "$size" "$conns" "$out"
}
echo "## connections (10 KB responses): | direct | nginx | sluice"
for c in 1 8 32 128 512; do row "c$c" 10k "$c"; done
echo "## response size: | direct | nginx | sluice"
row s1k 1k 32
row s10k 10k 32
row s100k 100k 32
row s10m 10m 4

# 1 GB, one client, streamed: MB/s and peak RSS of each path.
echo "## 1 GB streamed by one client (${RECORDS[1g]} records)"
for path in direct nginx sluice; do
  extra=()
  [ "$path" = direct ] || extra=("${TLS[@]}")
  [ "$path" = sluice ] && extra+=(-H "Sluice-Scenario: load")
  rm -f "$WORK/rss.g-$path"
  sample_rss "g-$path" &
  sampler=$!
  read -r code bytes secs <<<"$(curl -s "${extra[@]}" -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$(url_$path 1g)")"
  kill $sampler; wait $sampler 2>/dev/null || true
  check_statuses "{\"$code\":1}"
  rss=""
  [ "$path" = nginx ] && rss="nginx RSS peak $(peak "g-$path" 2) MB"
  [ "$path" = sluice ] && rss="gateway RSS peak $(peak "g-$path" 1) MB"
  printf "%-7s %s %d bytes in %.1f s = %.0f MB/s %s\n" "$path" "$code" "$bytes" "$secs" "$(echo "$bytes / $secs / 1000000" | bc -l)" "$rss"
done
echo "raw results in $WORK"
[ "$VOID" = 0 ] || echo "VOID: at least one run had a status other than 200; do not quote these figures"
