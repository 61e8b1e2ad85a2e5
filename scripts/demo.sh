#!/usr/bin/env bash
# Sets everything up, starts the RA centre service on the embedded defaults (SQLite, the SM2 software
# token initialised automatically with PINs generated into var/demo/, mode 0600), runs
# `racentre setup`, starts the service, runs `racentre demo --out demo-out` against it over HTTP, and
# keeps serving until interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

mkdir -p -m 700 var/demo
(umask 077
 [ -s var/demo/user.pin ] || .venv/bin/python -c 'import secrets; print(secrets.token_hex(8))' > var/demo/user.pin
 [ -s var/demo/so.pin ] || .venv/bin/python -c 'import secrets; print(secrets.token_hex(8))' > var/demo/so.pin)
cat > var/demo/racentre.toml <<TOML
# Demo configuration written by scripts/demo.sh (embedded defaults).
[database]
url = "sqlite:///$(pwd)/var/demo/racentre.db"

[hsm]
token = "racentre-demo"
pin_file = "user.pin"

[softtoken]
dir = "softtoken"
auto_init = true
so_pin_file = "so.pin"

[tsa]
units = "ecdsa=tsa-ecdsa:ecdsa-sha256"
# TSAPolicyId in every token: OpenSSL's example OID, for the demo only (a site sets its own)
policy = "1.2.3.4.1"
# DEMO ONLY: grant timestamps although this machine's clock may not be NTP-synchronised. A real TSA keeps
# the default (require_sync = true): it refuses (timeNotAvailable; REST 503) while the kernel reports the
# clock unsynchronised or its maximum error above the accuracy its tokens claim (accuracy_ms = 1000).
require_sync = false

[audit]
# checkpoints: signed by the HSM audit key, their number and hash kept in the HSM (the anchor), each
# time-stamped by our TSA; every 60 s or 10,000 rows while the chains move (README "Audit trail and insiders")
checkpoint_interval = 60
checkpoint_rows = 10000
anchor = true
timestamp = true
# an append-only copy of every checkpoint, as JSON lines: point it at a file on another host, or syslog
sink_file = "audit-checkpoints.jsonl"
sink_syslog = false

[service]
host = "${RACENTRE_SERVICE_HOST:-127.0.0.1}"
port = ${RACENTRE_SERVICE_PORT:-8600}
# the address certificates name for CRLs and OCSP (required to issue): here the demo's own listener
public_url = "http://${RACENTRE_SERVICE_HOST:-127.0.0.1}:${RACENTRE_SERVICE_PORT:-8600}"
TOML
export RACENTRE_CONFIG="$(pwd)/var/demo/racentre.toml"

.venv/bin/racentre setup --with-ecdsa      # schema upgrade, CA hierarchies, every HSM key, TSA/KMC/seal-maker certificates (idempotent)
.venv/bin/racentre serve &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT INT TERM
url="http://${RACENTRE_SERVICE_HOST:-127.0.0.1}:${RACENTRE_SERVICE_PORT:-8600}"
for _ in $(seq 1 100); do
  if .venv/bin/python -c "import urllib.request,sys; urllib.request.urlopen('$url/hsm/health', timeout=2)" 2>/dev/null; then break; fi
  kill -0 $server 2>/dev/null || { echo "demo.sh: the service did not start" >&2; exit 1; }
  sleep 0.2
done
.venv/bin/racentre demo --out demo-out --url "$url"
echo
echo "RA centre service listening on $url  (health: $url/hsm/health, artefacts in $(pwd)/demo-out)"
echo "Press Ctrl-C to stop."
wait $server
