#!/bin/sh
# Send an email through oauth-outbox with curl: POST a queue message v1 to /api/messages.
# 202 {"id": ...} when accepted; 400 {"error", "reasons"} names each bad field (curl --fail-with-body exits 22).
#   OUTBOX_URL=https://<function app>.azurewebsites.net OUTBOX_FUNCTION_KEY=<key> MAIL_TO=someone@example.com sh post-message.sh
set -eu
curl --silent --show-error --fail-with-body -X POST "$OUTBOX_URL/api/messages" \
  -H "x-functions-key: ${OUTBOX_FUNCTION_KEY:-}" -H 'Content-Type: application/json' \
  --data "{\"id\": \"${MAIL_ID:-curl-$(date +%s)}\", \"to\": [\"$MAIL_TO\"], \"subject\": \"${MAIL_SUBJECT:-Hello from curl}\", \"text\": \"Sent through oauth-outbox.\"}"
echo
