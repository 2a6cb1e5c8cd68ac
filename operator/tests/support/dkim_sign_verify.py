#!/usr/bin/env python3
"""Signs a message with a DKIM private key (PKCS#8 PEM, as the relay reads it from the Secret)
using dkimpy, then verifies the signature with dkimpy against the public key served by a real
DNS server, read with kdig. Exit status 0 and "verified SELECTOR" when it verifies.

Usage: dkim_sign_verify.py SERVER PORT DOMAIN SELECTOR ALGORITHM KEY.pem
ALGORITHM is rsa-sha256 or ed25519-sha256.
"""

import base64
import re
import subprocess
import sys

import dkim


def ed25519_seed(pem):
    der = base64.b64decode("".join(l for l in pem.splitlines() if not l.startswith("-----")))
    # PrivateKey ::= OCTET STRING wrapping CurvePrivateKey ::= OCTET STRING (32 bytes)
    at = der.find(b"\x04\x22\x04\x20")
    if at < 0:
        sys.exit("not an ed25519 pkcs#8 key")
    return base64.b64encode(der[at + 4: at + 36])


def main():
    server, port, domain, selector, algorithm, key_path = sys.argv[1:7]
    pem = open(key_path).read()
    key = ed25519_seed(pem) if algorithm == "ed25519-sha256" else pem.encode()

    def dns_txt(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        out = subprocess.run(["kdig", "@" + server, "-p", port, "+short", "+tcp", "TXT",
                              name.rstrip(".")], capture_output=True, text=True, check=True)
        line = out.stdout.strip().splitlines()
        if not line:
            return None
        return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', line[0])).encode()

    message = (b"From: Clinic <noreply@" + domain.encode() + b">\r\n"
               b"To: patient@example.net\r\n"
               b"Subject: Appointment reminder\r\n"
               b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
               b"Message-ID: <1@" + domain.encode() + b">\r\n\r\n"
               b"Your appointment is tomorrow at 9:00.\r\n")
    signature = dkim.sign(message, selector.encode(), domain.encode(), key,
                          signature_algorithm=algorithm.encode(),
                          include_headers=[b"from", b"to", b"subject", b"date"])
    if not dkim.verify(signature + message, dnsfunc=dns_txt):
        sys.exit("signature by %s did not verify" % selector)
    print("verified", selector)


if __name__ == "__main__":
    main()
