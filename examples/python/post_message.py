"""Send an email through oauth-outbox from Python: POST a queue message v1 to /api/messages.

Standard library only (urllib). The function checks the message as the queue trigger would and answers
202 {"id": ...}, or 400 {"error", "reasons"} naming each bad field.

    OUTBOX_URL=https://<function app>.azurewebsites.net OUTBOX_FUNCTION_KEY=<key> \
    MAIL_TO=someone@example.com python3 post_message.py
"""

import json
import os
import sys
import urllib.error
import urllib.request
import uuid


def post_message(base_url: str, function_key: str, message: dict) -> str:
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/api/messages",
        data=json.dumps(message).encode("utf-8"),
        method="POST",
        headers={"Content-Type": "application/json", "x-functions-key": function_key},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["id"]
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace")
        try:
            body = json.loads(body).get("reasons", body)
        except ValueError:
            pass
        raise SystemExit(f"Refused ({error.code}): {body}") from None


def main() -> None:
    message = {
        # Your idempotency key: the same id twice gives one email.
        "id": os.environ.get("MAIL_ID") or f"python-{uuid.uuid4()}",
        "to": [os.environ["MAIL_TO"]],
        "subject": os.environ.get("MAIL_SUBJECT", "Hello from Python"),
        "text": "Sent through oauth-outbox.",
    }
    message_id = post_message(os.environ["OUTBOX_URL"], os.environ.get("OUTBOX_FUNCTION_KEY", ""), message)
    print(f"Accepted: {message_id}")


if __name__ == "__main__":
    sys.exit(main())
