#!/usr/bin/env bash
# First BET with curl and openssl: sign, POST, print the answer.
# Needs HUB_URL, HUB_CLIENT_ID, HUB_CLIENT_SECRET (after `make up`: `set -a; source .hub/env; set +a`).
# Run: bash docs/examples/first-bet.sh [playerId]
set -euo pipefail
player="${1:-demo-alice}"
ref="bet-$(date +%s)-$RANDOM"
body='{"refId":"'"$ref"'","type":"BET","playerId":"'"$player"'","amountCents":100,"currency":"EUR"}'
ts="$(date +%s)"
# X-Signature = "sha256=" + hex HMAC-SHA256(secret, "{timestamp}.{METHOD}.{path_with_query}.{raw_body}")
sig="sha256=$(printf '%s' "$ts.POST./v1/transactions.$body" | openssl dgst -sha256 -hmac "$HUB_CLIENT_SECRET" -hex | sed 's/^.* //')"
curl -sS --fail-with-body "$HUB_URL/v1/transactions" \
  -H "Content-Type: application/json" -H "X-Client-Id: $HUB_CLIENT_ID" \
  -H "X-Timestamp: $ts" -H "X-Signature: $sig" -H "Idempotency-Key: $ref" \
  --data-raw "$body" -w '\nHTTP %{http_code}\n'
