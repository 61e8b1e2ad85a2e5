#!/usr/bin/env bash
# Sets everything up, starts the RA centre service on the embedded defaults (SQLite, the SM2 software
# token initialised automatically with PINs generated into var/demo/, mode 0600), runs
# `racentre setup`, starts the service, runs `racentre demo --out demo-out` against it over HTTP, creates
# the demo's RA team (one officer per role, enough for every four-eyes rule) and ends at a login: the
# console's address, the officers, their password and how to get the one-time code. Keeps serving until
# interrupted.
#
# For tests on a prepared box: RACENTRE_DEMO_SETUP=0 skips scripts/setup.sh, RACENTRE_DEMO_DIR (default
# var/demo) and RACENTRE_DEMO_OUT (default demo-out) move the site and the artefacts, RACENTRE_DEMO_EXIT=1
# stops the service after printing the logins.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${RACENTRE_DEMO_SETUP:-1}" = 0 ] || scripts/setup.sh

dir=${RACENTRE_DEMO_DIR:-var/demo}
out=${RACENTRE_DEMO_OUT:-demo-out}
mkdir -p -m 700 "$dir"
dir=$(cd "$dir" && pwd)
(umask 077
 [ -s "$dir/user.pin" ] || .venv/bin/python -c 'import secrets; print(secrets.token_hex(8))' > "$dir/user.pin"
 [ -s "$dir/so.pin" ] || .venv/bin/python -c 'import secrets; print(secrets.token_hex(8))' > "$dir/so.pin")
host=${RACENTRE_SERVICE_HOST:-127.0.0.1}
port=${RACENTRE_SERVICE_PORT:-8600}
url="http://$host:$port"
cat > "$dir/racentre.toml" <<TOML
# Demo configuration written by scripts/demo.sh (embedded defaults).
[database]
url = "sqlite:///$dir/racentre.db"

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
host = "$host"
port = $port
# the address certificates name for CRLs and OCSP (required to issue): here the demo's own listener
public_url = "$url"
TOML
export RACENTRE_CONFIG="$dir/racentre.toml"
racentre() { .venv/bin/racentre "$@"; }

echo "demo: racentre setup (CA hierarchies, HSM keys, TSA/KMC/seal-maker certificates) ..."
racentre setup --with-ecdsa >"$dir/setup.log"    # schema upgrade, keys, certificates (idempotent)
racentre serve >"$dir/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 150); do
  if .venv/bin/python -c "import urllib.request,sys; urllib.request.urlopen('$url/hsm/health', timeout=2)" 2>/dev/null; then break; fi
  kill -0 $server 2>/dev/null || { echo "demo.sh: the service did not start; its log ($dir/serve.log):" >&2; tail -n 20 "$dir/serve.log" >&2; exit 1; }
  sleep 0.2
done
echo "demo: racentre demo (every flow through the REST API) ..."
racentre demo --out "$out" --url "$url" >"$dir/demo.log"
artefacts=$(grep -c '^wrote ' "$dir/demo.log" || true)
racentre console demo-team --out "$dir/officers.tsv" >"$dir/team.txt"
password=$(sed -n 's/^password of every officer: //p' "$dir/team.txt")

cat <<TEXT

RA 中心数字认证系统 — 演示已就绪 / the demo is ready
  控制台 console:   $url/console/     ($url/ leads there too)
  口令 password:    $password     (every demo officer)
  动态口令 one-time code (TOTP, changes every 30 s):
                    .venv/bin/racentre console user totp NAME
                    (or scan the otpauth:// URI of NAME in $dir/officers.tsv with an authenticator app)
  演示人员 officers (登录名 login name, roles, duty):
TEXT
grep -v '^password of every officer' "$dir/team.txt" | sed 's/^/    /'
cat <<TEXT
  命令行 CLI:       export RACENTRE_CONFIG=$dir/racentre.toml
                    .venv/bin/racentre ra request list         # act as an officer: ... approve ID --as sun
  REST:             Authorization: Bearer <the officer's API token in $dir/officers.tsv>
  artefacts:        $artefacts files in $(cd "$out" && pwd)   (logs: $dir/setup.log, demo.log, serve.log)
TEXT
if [ -s "$out/screenshots/index.html" ]; then
  echo "  一天 the day:     $(cd "$out" && pwd)/screenshots/index.html   (the team's day in the console, step by step)"
fi
if [ "${RACENTRE_DEMO_EXIT:-0}" = 1 ]; then exit 0; fi
echo "Press Ctrl-C to stop."
wait $server
