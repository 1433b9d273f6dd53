#!/usr/bin/env bash
# TLS scan of sluice's mTLS data listener with sslyze (https://github.com/nabla-c0d3/sslyze).
#
# Builds the release binary, starts `sluice demo` in a temp folder, scans the data listener
# presenting the demo licensee's client certificate, prints a summary and exits non-zero when
# any check fails:
#   - SSL 2.0, SSL 3.0, TLS 1.0 and TLS 1.1 refused; TLS 1.2 and 1.3 accepted
#   - no weak TLS 1.2 cipher suite: NULL, EXPORT, anonymous, RC4, DES/3DES, MD5, CBC, or
#     static-RSA key exchange (no forward secrecy)
#   - no client-initiated renegotiation; secure renegotiation signalled, or no renegotiation
#   - no TLS compression, not vulnerable to Heartbleed, OpenSSL CCS injection or ROBOT
#
# sslyze is installed from PyPI into a virtualenv (target/sslyze-venv, or $SSLYZE_VENV) when
# `$PYTHON -m sslyze` is not available. Not run by .ci/run (it needs a release build and PyPI).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c 'import sslyze' 2>/dev/null; then
  VENV=${SSLYZE_VENV:-$TARGET_DIR/sslyze-venv}
  if ! "$VENV/bin/python" -c 'import sslyze' 2>/dev/null; then
    echo "installing sslyze into $VENV" >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet sslyze
  fi
  PYTHON=$VENV/bin/python
fi

cargo build --release --bin sluice >&2
BIN=$TARGET_DIR/release/sluice

WORK=$(mktemp -d)
DEMO_PID=
cleanup() {
  if [ -n "$DEMO_PID" ] && kill -0 "$DEMO_PID" 2>/dev/null; then
    kill -INT "$DEMO_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$DEMO_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DEMO_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" demo --dir "$WORK/demo" >"$WORK/demo.log" 2>&1 &
DEMO_PID=$!
for _ in $(seq 300); do
  [ -s "$WORK/demo/demo.json" ] && break
  kill -0 "$DEMO_PID" 2>/dev/null || { cat "$WORK/demo.log" >&2; echo "sluice demo exited" >&2; exit 1; }
  sleep 0.2
done
[ -s "$WORK/demo/demo.json" ] || { cat "$WORK/demo.log" >&2; echo "no demo.json after 60 s" >&2; exit 1; }
sleep 0.5  # demo.json is written after the listeners are bound; let the write finish

read -r TARGET CERT KEY < <("$PYTHON" - "$WORK/demo/demo.json" <<'EOF'
import json, sys, urllib.parse
m = json.load(open(sys.argv[1]))
u = urllib.parse.urlsplit(m["gateways"][0]["url"])
lic = m["licensees"][0]
print(f"{u.hostname}:{u.port}", lic["cert"], lic["key"])
EOF
)
echo "scanning $TARGET (client certificate $CERT)" >&2

"$PYTHON" -m sslyze --quiet --json_out "$WORK/scan.json" \
  --cert "$CERT" --key "$KEY" --keyform PEM \
  --mozilla_config disable \
  --sslv2 --sslv3 --tlsv1 --tlsv1_1 --tlsv1_2 --tlsv1_3 \
  --reneg --compression --heartbleed --openssl_ccs --robot --fallback --elliptic_curves \
  "$TARGET" >"$WORK/sslyze.log" 2>&1 || true
[ -s "$WORK/scan.json" ] || { cat "$WORK/sslyze.log" >&2; echo "sslyze wrote no results" >&2; exit 1; }

"$PYTHON" - "$WORK/scan.json" <<'EOF'
import json, re, sys

doc = json.load(open(sys.argv[1]))
results = doc.get("server_scan_results") or []
if not results or results[0].get("connectivity_status") != "COMPLETED":
    print("FAIL  could not connect:", json.dumps(results[0] if results else doc)[:2000])
    sys.exit(1)
scan = results[0]["scan_result"]
failures = []

def check(ok, label, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'}  {label}{(': ' + detail) if detail else ''}")
    if not ok:
        failures.append(label)

def result(cmd):
    entry = scan.get(cmd) or {}
    if entry.get("status") != "COMPLETED":
        check(False, f"{cmd} scan completed", str(entry.get("error_reason") or entry.get("status")))
        return None
    return entry["result"]

def accepted(cmd):
    r = result(cmd)
    return None if r is None else [c["cipher_suite"]["name"] for c in r["accepted_cipher_suites"]]

for cmd, name in [("ssl_2_0_cipher_suites", "SSL 2.0"), ("ssl_3_0_cipher_suites", "SSL 3.0"),
                  ("tls_1_0_cipher_suites", "TLS 1.0"), ("tls_1_1_cipher_suites", "TLS 1.1")]:
    suites = accepted(cmd)
    if suites is not None:
        check(not suites, f"{name} refused", ", ".join(suites))

tls12 = accepted("tls_1_2_cipher_suites") or []
tls13 = accepted("tls_1_3_cipher_suites") or []
check(bool(tls12), "TLS 1.2 accepted", ", ".join(tls12))
check(bool(tls13), "TLS 1.3 accepted", ", ".join(tls13))
weak = re.compile(r"NULL|EXPORT|anon|_ADH_|_AECDH_|RC4|_DES_|3DES|_MD5|_CBC_|^TLS_RSA_WITH_")
bad = [s for s in tls12 + tls13 if weak.search(s)]
check(not bad, "no weak cipher suites (NULL/EXPORT/anon/RC4/DES/3DES/MD5/CBC/static RSA)", ", ".join(bad))

r = result("session_renegotiation")
if r is not None:
    check(not r["is_vulnerable_to_client_renegotiation_dos"], "no client-initiated renegotiation")
    check(r["supports_secure_renegotiation"], "secure renegotiation signalled (RFC 5746)")
r = result("tls_compression")
if r is not None:
    check(not r["supports_compression"], "no TLS compression (CRIME)")
r = result("heartbleed")
if r is not None:
    check(not r["is_vulnerable_to_heartbleed"], "not vulnerable to Heartbleed")
r = result("openssl_ccs_injection")
if r is not None:
    check(not r["is_vulnerable_to_ccs_injection"], "not vulnerable to OpenSSL CCS injection")
r = result("robot")
if r is not None:
    check(r["robot_result"].startswith("NOT_VULNERABLE"), "not vulnerable to ROBOT", r["robot_result"])
r = (scan.get("tls_fallback_scsv") or {}).get("result")
if r is not None:
    # Informational: with TLS 1.2 as the floor, TLS 1.3's downgrade sentinel protects 1.3 clients.
    print(f"info  TLS_FALLBACK_SCSV supported: {r['supports_fallback_scsv']}")
r = (scan.get("elliptic_curves") or {}).get("result")
if r is not None:
    curves = [c["name"] for c in r.get("supported_curves") or []]
    print(f"info  key exchange groups: {', '.join(curves)}")

print()
if failures:
    print(f"sslyze: {len(failures)} check(s) failed")
    sys.exit(1)
print("sslyze: all checks passed")
EOF
