#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for the notice-delivery tests.

    smtp_sink.py --listen 127.0.0.1:PORT --maildir DIR

Every accepted message is written to DIR/new as one file (the Maildir
layout, via Python's mailbox module), with the envelope recipients in an
``X-Envelope-To`` header. Recipients at the domain ``reject.invalid`` are
refused with 550 (a permanent failure); those at ``later.invalid`` with 451
(a temporary one). Prints ``listening HOST:PORT`` once it accepts
connections; runs until killed.
"""

import argparse
import mailbox
import socket
import sys
import time

try:
    from aiosmtpd.controller import Controller
except ImportError as e:  # pragma: no cover - reported to the test
    print(f"aiosmtpd is missing (pip install -r tests/interop/requirements.txt): {e}", file=sys.stderr)
    sys.exit(3)


class Sink:
    def __init__(self, maildir):
        self.box = mailbox.Maildir(maildir, create=True)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        domain = address.rsplit("@", 1)[-1].lower()
        if domain == "reject.invalid":
            return "550 5.1.1 mailbox unavailable"
        if domain == "later.invalid":
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = b"X-Envelope-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n"
        message += envelope.original_content or envelope.content
        self.box.add(message)
        return "250 2.0.0 Ok: queued"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--maildir", required=True)
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    port = int(port)
    if port == 0:
        # aiosmtpd needs the port up front: take a free one.
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
    controller = Controller(Sink(args.maildir), hostname=host, port=port)
    controller.start()
    print(f"listening {host}:{controller.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
