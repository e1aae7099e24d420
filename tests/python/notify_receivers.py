"""Local receivers for the notification end-to-end tests: a Slack- and Teams-shaped incoming
webhook server, a CloudEvents webhook receiver that verifies funnelgate's HMAC-SHA256 signature
(and rejects stale timestamps), and a real SMTP server (aiosmtpd) that requires STARTTLS.

Every request is checked against the payload shape the vendor documents for incoming webhooks;
each accepted or rejected request is appended as one JSON line to the log file. Prints
`READY <http port> <smtp port>` once both listen, and serves until its stdin closes.

usage: notify_receivers.py <log.jsonl> <http port|0> <smtp port|0> <hmac key> <cert.pem> <key.pem>
"""

import asyncio
import hashlib
import hmac
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.smtp import SMTP

LOG_PATH = sys.argv[1]
HTTP_PORT = int(sys.argv[2])
SMTP_PORT = int(sys.argv[3])
HMAC_KEY = sys.argv[4].encode()
CERT, KEY = sys.argv[5], sys.argv[6]
MAX_SKEW_SECONDS = 300
LOCK = threading.Lock()


def log(record):
    with LOCK, open(LOG_PATH, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def check_slack(body, headers):
    """Slack incoming webhooks: a JSON object with `text` (string) and optional Block Kit
    `blocks` (objects with a `type`); header text is plain_text, section text mrkdwn."""
    if not isinstance(body.get("text"), str) or not body["text"]:
        return "`text` must be a non-empty string"
    blocks = body.get("blocks")
    if not isinstance(blocks, list) or not blocks or len(blocks) > 50:
        return "`blocks` must be a list of 1..50 blocks"
    for b in blocks:
        if not isinstance(b, dict) or b.get("type") not in ("header", "section", "context", "divider"):
            return f"unknown block {b!r}"
        if b["type"] == "header" and (b["text"].get("type") != "plain_text" or len(b["text"]["text"]) > 150):
            return "a header's text is plain_text of at most 150 characters"
        if b["type"] == "section" and (b["text"].get("type") not in ("mrkdwn", "plain_text") or len(b["text"]["text"]) > 3000):
            return "a section's text is mrkdwn/plain_text of at most 3000 characters"
    return None


def check_teams(body, headers):
    """Teams incoming webhooks: {"type": "message", "attachments": [{"contentType":
    "application/vnd.microsoft.card.adaptive", "content": {AdaptiveCard}}]}."""
    if body.get("type") != "message":
        return "`type` must be `message`"
    atts = body.get("attachments")
    if not isinstance(atts, list) or len(atts) != 1:
        return "exactly one attachment expected"
    a = atts[0]
    if a.get("contentType") != "application/vnd.microsoft.card.adaptive":
        return "contentType must be application/vnd.microsoft.card.adaptive"
    card = a.get("content") or {}
    if card.get("type") != "AdaptiveCard" or not isinstance(card.get("version"), str):
        return "content must be an AdaptiveCard with a version"
    if not card.get("body") or any(e.get("type") != "TextBlock" or not isinstance(e.get("text"), str) for e in card["body"]):
        return "the card body must be TextBlocks with text"
    return None


def check_hook(raw, body, headers):
    """The generic webhook: CloudEvents 1.0 structured mode, signed."""
    if not headers.get("Content-Type", "").startswith("application/cloudevents+json"):
        return "content type must be application/cloudevents+json"
    ts = headers.get("Funnelgate-Timestamp", "")
    sig = headers.get("Funnelgate-Signature", "")
    if not ts.isdigit():
        return "missing Funnelgate-Timestamp"
    if abs(time.time() - int(ts)) > MAX_SKEW_SECONDS:
        return "stale timestamp (replay?)"
    expected = "v1=" + hmac.new(HMAC_KEY, ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sig):
        return "bad signature"
    for k in ("specversion", "id", "source", "type"):
        if not isinstance(body.get(k), str) or not body[k]:
            return f"missing CloudEvents attribute {k}"
    if body["specversion"] != "1.0":
        return "specversion must be 1.0"
    if body.get("datacontenttype") != "application/json" or not isinstance(body.get("data"), dict):
        return "data must be JSON"
    return None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sink = self.path.strip("/").split("/")[0]
        try:
            body = json.loads(raw)
        except ValueError:
            body, error = None, "not JSON"
        else:
            if sink == "slack":
                error = check_slack(body, self.headers)
            elif sink == "teams":
                error = check_teams(body, self.headers)
            elif sink == "hook":
                error = check_hook(raw, body, self.headers)
            else:
                error = f"no receiver at {self.path}"
        log({"sink": sink, "ok": error is None, "error": error, "body": body})
        reply = b"ok" if error is None else error.encode()
        self.send_response(200 if error is None else 400)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


class Mailbox:
    async def handle_DATA(self, server, session, envelope):
        log({
            "sink": "email",
            "ok": session.ssl is not None,
            "error": None if session.ssl is not None else "mail without STARTTLS",
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "message": envelope.content.decode("utf-8", "replace"),
        })
        return "250 OK"


async def main():
    httpd = ThreadingHTTPServer(("127.0.0.1", HTTP_PORT), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(CERT, KEY)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Mailbox(), hostname="localhost", tls_context=tls, require_starttls=True),
        host="127.0.0.1",
        port=SMTP_PORT,
    )
    smtp_port = server.sockets[0].getsockname()[1]
    print(f"READY {httpd.server_address[1]} {smtp_port}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()
    httpd.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
