"""Where alerts go: the log, a webhook (JSON POST) and email (SMTP). Each event carries the
alert's stable id; an alert opens once, updates at most every 15 minutes while open, and
closes with a recovery notice."""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from email.message import EmailMessage
from typing import Any

log = logging.getLogger("opmetrics.monitor")


def payload(event: str, alert: Any) -> dict[str, Any]:
    return {"event": event, **alert.to_json()}


class LogSink:
    def __init__(self, printer: Any = None):
        self.printer = printer

    def send(self, event: str, alert: Any) -> None:
        top = alert.root_cause[0] if alert.root_cause else None
        hint = f"; top cause {top['dimension']} = {top['value']}" if top else ""
        line = f"[{event.upper()}] {alert.severity} {alert.alert_id} {alert.message}{hint}"
        (self.printer or log.warning)(line)


class WebhookSink:
    def __init__(self, url: str, timeout: float = 5.0):
        self.url, self.timeout = url, timeout

    def send(self, event: str, alert: Any) -> None:
        body = json.dumps(payload(event, alert)).encode()
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
        except OSError as e:  # a sink failing must not stop monitoring
            log.error("webhook %s failed: %s", self.url, e)


class SmtpSink:
    def __init__(self, host: str, port: int, to: list[str], sender: str = "opmetrics@localhost"):
        self.host, self.port, self.to, self.sender = host, port, to, sender

    def send(self, event: str, alert: Any) -> None:
        msg = EmailMessage()
        verb = {"open": "ALERT", "update": "STILL OPEN", "close": "RECOVERED"}[event]
        msg["Subject"] = f"[opmetrics] {verb} {alert.severity}: {alert.message[:120]}"
        msg["From"], msg["To"] = self.sender, ", ".join(self.to)
        msg["X-Opmetrics-Alert-Id"] = alert.alert_id
        msg.set_content(json.dumps(payload(event, alert), indent=2))
        try:
            with smtplib.SMTP(self.host, self.port, timeout=10) as s:
                s.send_message(msg)
        except OSError as e:
            log.error("SMTP %s:%s failed: %s", self.host, self.port, e)
