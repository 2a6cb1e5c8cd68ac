"""Submits messages over implicit TLS from several threads until STOP_FILE exists, reconnecting
whenever the relay goes away. Prints "accepted <seq>" (flushed) after each 250 to DATA; every
message carries its seq in an X-Test-Seq header.

usage: load.py PORT CA CERT KEY THREADS STOP_FILE [BODY_BYTES]
"""

import os
import smtplib
import ssl
import sys
import threading
import time

port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
threads, stop_file = int(sys.argv[5]), sys.argv[6]
body_bytes = int(sys.argv[7]) if len(sys.argv) > 7 else 1024
lock = threading.Lock()
DOMAIN = "mail.st-olaf.test"


def body(seq):
    line = "x" * 76 + "\r\n"
    text = (line * (body_bytes // len(line) + 1))[:body_bytes]
    return (f"From: <load@{DOMAIN}>\r\nTo: <sink@dest.test>\r\nSubject: load\r\n"
            f"X-Test-Seq: {seq}\r\n\r\n{text}\r\n").encode()


def worker(index):
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    n = 0
    client = None
    while not os.path.exists(stop_file):
        try:
            if client is None:
                client = smtplib.SMTP_SSL("localhost", port, context=context, timeout=10)
                client.ehlo("load.test")
            seq = f"{index}-{n}"
            n += 1
            client.sendmail(f"load@{DOMAIN}", ["sink@dest.test"], body(seq))
            with lock:
                print("accepted", seq, flush=True)
        except Exception:
            client = None
            time.sleep(0.05)


workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
