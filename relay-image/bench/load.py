"""The benchmark's load generator: THREADS processes, one connection each, over implicit TLS with a client
certificate, each sending MESSAGES messages of SIZE bytes. Prints one JSON object: messages,
seconds, msgs_per_s and the p50/p99 accept latency in ms (from MAIL FROM to the 250 after DATA,
on an open connection).

usage: load.py PORT CA CERT KEY PROCESSES MESSAGES SIZE
"""

import json
import multiprocessing
import smtplib
import ssl
import sys
import time

port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
threads, messages, size = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
DOMAIN = "mail.st-olaf.test"


def message(seq):
    line = "x" * 76 + "\r\n"
    body = (line * (size // len(line) + 1))[:size]
    return (f"From: <bench@{DOMAIN}>\r\nTo: <sink@dest.test>\r\nSubject: bench {seq}\r\n"
            f"Message-ID: <{seq}@{DOMAIN}>\r\n\r\n{body}\r\n").encode()


def worker(args):
    index, start_at = args
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    client = smtplib.SMTP_SSL("localhost", port, context=context, timeout=60)
    client.ehlo("bench.test")
    payloads = [message(f"{index}-{n}") for n in range(messages)]
    while time.time() < start_at:
        time.sleep(0.001)
    latencies, failures = [], 0
    first = time.time()
    for payload in payloads:
        t0 = time.perf_counter()
        try:
            client.sendmail(f"bench@{DOMAIN}", ["sink@dest.test"], payload)
            latencies.append(time.perf_counter() - t0)
        except smtplib.SMTPServerDisconnected:
            failures += 1
            client = smtplib.SMTP_SSL("localhost", port, context=context, timeout=60)
            client.ehlo("bench.test")
        except smtplib.SMTPException:
            failures += 1
    last = time.time()
    try:
        client.quit()
    except smtplib.SMTPException:
        pass
    return latencies, failures, first, last


def main():
    start_at = time.time() + 2
    with multiprocessing.Pool(threads) as pool:
        results = pool.map(worker, [(i, start_at) for i in range(threads)])
    latencies = sorted(l for r in results for l in r[0])
    failures = sum(r[1] for r in results)
    elapsed = max(r[3] for r in results) - min(r[2] for r in results)

    def pct(p):
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 2)

    print(json.dumps({"messages": len(latencies), "failures": failures,
                      "seconds": round(elapsed, 2),
                      "msgs_per_s": round(len(latencies) / elapsed, 1),
                      "p50_ms": pct(0.50), "p99_ms": pct(0.99)}))


if __name__ == "__main__":
    main()
