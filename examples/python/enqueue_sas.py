"""Send an email through oauth-outbox from Python: put a queue message v1 straight on the mail-outbox queue.

Standard library only: the Queue service REST API ("Put Message") with a SAS URL of the queue that allows
add ("a"). The storage account this project deploys refuses shared-key access, so an account-key SAS does not
work there (see README.md); this is for accounts that allow it, and Azurite. The message is base64-encoded
UTF-8 JSON, as the function expects. Nothing checks it before the function does:
a bad message ends `failed` with its reason on the mail-results queue and in the deliveries table.

    OUTBOX_QUEUE_SAS_URL='https://<account>.queue.core.windows.net/mail-outbox?sv=...&sig=...' \
    MAIL_TO=someone@example.com python3 enqueue_sas.py
"""

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from xml.sax.saxutils import escape


def enqueue(queue_sas_url: str, message: dict) -> None:
    url = urllib.parse.urlsplit(queue_sas_url)
    messages_url = urllib.parse.urlunsplit((url.scheme, url.netloc, url.path.rstrip("/") + "/messages", url.query, ""))
    # messagettl=-1: a message waits until it is sent or fails; it never silently expires on the queue.
    messages_url += ("&" if url.query else "?") + "messagettl=-1"
    text = base64.b64encode(json.dumps(message).encode("utf-8")).decode("ascii")
    body = f"<QueueMessage><MessageText>{escape(text)}</MessageText></QueueMessage>".encode("utf-8")
    request = urllib.request.Request(
        messages_url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/xml", "x-ms-version": "2021-08-06"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 201:
                raise SystemExit(f"The queue answered {response.status}")
    except urllib.error.HTTPError as error:
        raise SystemExit(f"The queue refused the message ({error.code}): {error.read().decode('utf-8', 'replace')}") from None


def main() -> None:
    message = {
        "id": os.environ.get("MAIL_ID") or f"python-{uuid.uuid4()}",
        "to": [os.environ["MAIL_TO"]],
        "subject": os.environ.get("MAIL_SUBJECT", "Hello from Python"),
        "text": "Sent through oauth-outbox.",
    }
    enqueue(os.environ["OUTBOX_QUEUE_SAS_URL"], message)
    print(f"Enqueued: {message['id']}")


if __name__ == "__main__":
    main()
