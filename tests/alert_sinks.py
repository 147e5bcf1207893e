"""Real receivers for neelix's notices in tests: an aiosmtpd SMTP server and a local HTTP
server for webhooks, both on 127.0.0.1 ports of their own, each stoppable and restartable."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from appliance.harness.instance import free_port


@dataclass
class Mail:
    at: float
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        return self.message.get_content()


class MailSink:
    """An aiosmtpd server collecting every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mails: list[Mail] = []
        self._lock = threading.Lock()
        self.controller: Controller | None = None

    async def handle_DATA(self, _server: object, _session: object, envelope: object) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.mails.append(Mail(time.time(), list(envelope.rcpt_tos), message))
        return "250 OK"

    def start(self) -> MailSink:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def received(self, words: str = "") -> list[Mail]:
        with self._lock:
            return [m for m in self.mails if words in m.subject or words in m.body]


class WebhookSink:
    """An HTTP server that answers POSTs with the next status in `statuses` (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[tuple[float, int, dict]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = sink.statuses.pop(0) if sink.statuses else 200
                sink.requests.append((time.time(), status, json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> list[dict]:
        return [payload for _at, status, payload in self.requests if status == 200]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
