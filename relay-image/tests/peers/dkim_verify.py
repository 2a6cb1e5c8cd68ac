"""Verifies every DKIM-Signature of a message with dkimpy, taking the selectors' DNS TXT records
from a JSON file ({"sel._domainkey.domain": "v=DKIM1; ..."}) instead of DNS.

usage: dkim_verify.py MESSAGE KEYS_JSON
prints one line per signature, "<d> <s> <a> pass|fail", in header order; exits 1 if any fails or
there is none.
"""

import json
import sys

import dkim


def main():
    message = open(sys.argv[1], "rb").read()
    records = json.load(open(sys.argv[2]))

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return records.get(name.rstrip("."), "").encode()

    verifier = dkim.DKIM(message)
    total = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    ok = total > 0
    for index in range(total):
        result = verifier.verify(idx=index, dnsfunc=dnsfunc)
        fields = verifier.signature_fields
        print(fields[b"d"].decode(), fields[b"s"].decode(), fields[b"a"].decode(),
              "pass" if result else "fail")
        ok = ok and result
    if total == 0:
        print("no DKIM-Signature")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
