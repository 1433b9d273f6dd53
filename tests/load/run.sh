#!/usr/bin/env bash
# Load harness (issue 12, goal 1): the same upstream file reached directly, through nginx as an
# mTLS reverse proxy, and through sluice with the full policy (licence, rate limit, masking,
# audit), side by side in one run, for 10 KB and 100 KB responses over HTTP/1.1 and HTTP/2.
#
#   tests/load/run.sh [duration_s=10] [connections=32]
#
# Prints, per size and protocol: req/s, p50, p99 and CPU seconds per 1,000 requests of each
# path with every run's status distribution, and the sluice/nginx ratio; then the p99 added
# over direct at 200 req/s (8 connections, HTTP/1.1). A run with any status but 200 is void.
# Setup: tests/load/lib.sh. Not a CI test: read the figures as ratios within one run.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10}
CONN=${2:-32}
SIZES="10k 100k"
source tests/load/lib.sh

echo "# $(uptime | sed 's/.*load/load/'); ${DUR}s per run, $CONN connections"
printf "%-6s %-6s %-7s %9s %8s %8s %10s  %s\n" size proto path "req/s" "p50 ms" "p99 ms" "CPU s/1k" statuses
for size in 10k 100k; do
  for proto in h1 h2; do
    declare -A RPS=()
    for path in direct nginx sluice; do
      args=()
      [ "$proto" = h2 ] && args=(--http2)
      # oha speaks HTTP/2 over TLS only: the plain-HTTP upstream stays HTTP/1.1.
      [ "$path" = direct ] && args=()
      read -r rps p50 p99 _ cpu statuses <<<"$(load "$size-$proto-$path" "$path" "$size" "$CONN" "${args[@]}")"
      RPS[$path]=$rps
      check_statuses "$statuses"
      cpu_col=$([ "$path" = direct ] && echo - || printf "%.3f" "$cpu")
      printf "%-6s %-6s %-7s %9d %8.2f %8.2f %10s  %s\n" "$size" "$proto" "$path" "$rps" "$p50" "$p99" "$cpu_col" "$statuses"
    done
    printf "%-6s %-6s sluice/nginx = %.2f×\n" "$size" "$proto" "$(echo "${RPS[sluice]} / ${RPS[nginx]}" | bc -l)"
  done
done

echo "# below the knee: 200 req/s, 8 connections, HTTP/1.1, 10 KB"
for path in direct nginx sluice; do
  read -r _ _ p99 _ _ statuses <<<"$(load "q-$path" "$path" 10k 8 -q 200)"
  declare "P99_$path=$p99"
  check_statuses "$statuses"
  printf "%-7s p99 %.2f ms  %s\n" "$path" "$p99" "$statuses"
done
printf "p99 added over direct: sluice %.2f ms, nginx %.2f ms\n" \
  "$(echo "$P99_sluice - $P99_direct" | bc -l)" "$(echo "$P99_nginx - $P99_direct" | bc -l)"
echo "raw results in $WORK"
[ "$VOID" = 0 ] || echo "VOID: at least one run had a status other than 200; do not quote these figures"
