"""A sink MX for the relay's tests: aiosmtpd with STARTTLS required; every message is written to
OUT_DIR as <n>.eml with its envelope in <n>.json. Recipients "nobody@..." get 550, "later@..."
get 451.

usage: sink.py PORT CERT KEY OUT_DIR
"""

import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


class Store:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # "nobody@..." is refused for good, "later@..." temporarily: for bounce and retry tests.
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        if address.startswith("later@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 ok"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.out_dir, f"{os.getpid()}-{self.count}")
        with open(base + ".json", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                       "tls": session.ssl is not None}, f)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 stored"


class TlsController(Controller):
    def __init__(self, handler, port, context):
        self.context = context
        super().__init__(handler, hostname="127.0.0.1", port=port)

    def factory(self):
        return SMTP(self.handler, tls_context=self.context, require_starttls=True,
                    hostname="localhost", decode_data=False)


def main():
    port, cert, key, out_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controller = TlsController(Store(out_dir), port, context)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.new_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
