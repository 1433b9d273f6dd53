#!/usr/bin/env bash
# The registry's public catalog at city scale: registers N datasets (default 15,000, the seed's
# Shanghai figure) through the admin API of a `sluice demo` registry (SQLite), then measures
# `/catalog` latency: the first page of 1,000, the last page, a whole walk by `Link`, and a
# revalidation with `If-None-Match` (304). Median of 20 each, one run, release build.
#
#   tests/load/registry_catalog.sh [datasets=15000]
#
# Not a CI test: read the figures against each other.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-15000}
WORK=$(mktemp -d /tmp/sluice-catalog.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
cargo build --release -q
SLUICE_LOG=warn ./target/release/sluice demo --dir "$WORK/demo" >"$WORK/demo.log" 2>&1 &
for _ in $(seq 1 150); do [ -f "$WORK/demo/demo.json" ] && break; sleep 0.2; done
python3 - "$WORK/demo/demo.json" "$N" <<'PY'
import http.client, json, ssl, statistics, sys, time, urllib.parse

manifest = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
reg = manifest["registry"]
url = urllib.parse.urlparse(reg["admin_url"])
ctx = ssl.create_default_context(cafile=manifest["ca"])
ctx.load_cert_chain(reg["admin"]["cert"], reg["admin"]["key"])
admin = http.client.HTTPSConnection(url.hostname, url.port, context=ctx)
start = time.time()
for i in range(n):
    spec = {"id": f"bench-{i:05d}", "title": f"Dataset {i}", "owner": "fire-bureau",
            "update_frequency": "daily", "fields": [{"name": "id"}, {"name": "district"}]}
    admin.request("POST", "/admin/datasets", json.dumps({"dataset": spec, "reason": "bench"}),
                  {"content-type": "application/json"})
    r = admin.getresponse(); r.read()
    assert r.status == 201, (r.status, i)
print(f"registered {n} datasets in {time.time() - start:.1f} s")

public = http.client.HTTPSConnection(url.hostname, url.port,
                                     context=ssl.create_default_context(cafile=manifest["ca"]))
statuses = {}
def get(path, headers=None):
    t = time.perf_counter()
    public.request("GET", path, headers=headers or {})
    r = public.getresponse(); body = r.read()
    statuses[r.status] = statuses.get(r.status, 0) + 1
    return (time.perf_counter() - t) * 1000, r, body

def median(path, headers=None):
    return statistics.median(get(path, headers)[0] for _ in range(20))

_, r, body = get("/catalog")
etag = r.getheader("etag")
total = n + len(json.loads(get(f"/catalog?limit=10000&offset={n}")[2]))
print(f"first page of 1,000: {median('/catalog'):.1f} ms ({len(body) / 1e6:.2f} MB)")
print(f"last page: {median(f'/catalog?offset={total - 1000}'):.1f} ms")
print(f"revalidation (If-None-Match, 304): {median('/catalog', {'if-none-match': etag}):.1f} ms")
t = time.perf_counter(); path = "/catalog"; pages = 0
while path:
    _, r, _ = get(path); pages += 1
    link = r.getheader("link")
    path = link[1:link.index(">")] if link else None
print(f"whole catalog by Link: {pages} pages, {(time.perf_counter() - t) * 1000:.0f} ms")
print(f"statuses: {statuses}")
assert set(statuses) <= {200, 304}, "a run with other statuses is void"
PY
