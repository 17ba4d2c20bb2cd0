#!/usr/bin/env bash
# Smoke test of the real OpenID Provider used by the end-to-end tests (tests/op/server.mjs):
# starts it on a free port, checks discovery, the JWKS and a client_credentials JWT access
# token (typ at+jwt, aud = the API resource), then stops it. Needs node, npm, curl, python3.
#   ./scripts/op-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/../tests/op"

[ -d node_modules/oidc-provider ] || npm ci --no-audit --no-fund

resource=http://localhost:3000/api
out=$(mktemp)
PORT=0 API_RESOURCE=$resource node server.mjs >"$out" 2>/dev/null &
op=$!
trap 'kill "$op" 2>/dev/null || true; wait "$op" 2>/dev/null || true; rm -f "$out"' EXIT

for _ in $(seq 1 300); do
  grep -q '^READY ' "$out" && break
  kill -0 "$op" 2>/dev/null || { echo "provider exited before READY" >&2; exit 1; }
  sleep 0.1
done
issuer=$(awk '/^READY /{print $2; exit}' "$out")
[ -n "$issuer" ] || { echo "no READY line within 30 s" >&2; exit 1; }
echo "provider: $issuer"

curl -fsS "$issuer/.well-known/openid-configuration" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["issuer"] == sys.argv[1], d["issuer"]
assert "client_credentials" in d["grant_types_supported"]
print("discovery: ok, jwks_uri", d["jwks_uri"])' "$issuer"

curl -fsS "$issuer/jwks" | python3 -c '
import json, sys
keys = json.load(sys.stdin)["keys"]
assert keys and all(k["kty"] == "RSA" and "d" not in k for k in keys), keys
print("jwks: ok,", [k["kid"] for k in keys])'

curl -fsS -u svc-writer:writer-secret -d grant_type=client_credentials \
  -d scope='api:read api:write' -d resource="$resource" "$issuer/token" | python3 -c '
import base64, json, sys
t = json.load(sys.stdin)["access_token"].split(".")
seg = lambda s: json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
h, c = seg(t[0]), seg(t[1])
assert h["typ"] == "at+jwt" and h["alg"] == "RS256", h
assert c["aud"] == sys.argv[1] and c["iss"] == sys.argv[2] and c["sub"] == "svc-writer", c
assert c["scope"] == "api:read api:write", c
print("access token: ok,", json.dumps(h), json.dumps(c))' "$resource" "$issuer"

echo "op smoke test passed"
