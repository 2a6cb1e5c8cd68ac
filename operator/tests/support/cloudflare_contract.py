#!/usr/bin/env python3
"""A contract double of Cloudflare's v4 DNS records API, written from its documentation.

It serves /client/v4/zones/{zone_id}/dns_records (list with name/type filters and page/per_page
pagination reported in result_info; create; full replace with PUT; delete), requires a bearer
token, stores TXT content as quoted character-strings of at most 255 bytes (long values given
unquoted are split, and every TXT value is returned quoted), keeps record comments, refuses
proxied TXT records and identical duplicates with Cloudflare's error body
{"success": false, "errors": [{"code": ..., "message": ...}], ...}, and can be told to answer
the next requests with 429 (with Retry-After) or 500.

Test control endpoints under /__control/: POST seed (add records as if made by someone else),
POST fail ({"status": 429, "count": 2}), GET stats (request and write counters), GET records.

Usage: cloudflare_contract.py --token TOKEN --zone ZONE_ID=zone.name [--max-per-page N]
Prints "listening PORT" on stdout once it accepts connections on 127.0.0.1.
"""

import argparse
import datetime
import json
import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOCK = threading.Lock()
STATE = {"records": {}, "stats": {"requests": 0, "writes": 0, "reads": 0}, "fail": []}
SUPPORTED_TYPES = {"A", "AAAA", "TXT", "MX", "CNAME", "NS", "SRV", "CAA"}


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def split_quoted(content):
    """Character-strings of a TXT content, or None when the quoting is broken."""
    if not content.startswith('"'):
        data = content.encode()
        return [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
    strings, current, inside, escaped = [], bytearray(), False, False
    for ch in content.encode():
        if inside and escaped:
            current.append(ch)
            escaped = False
        elif inside and ch == ord("\\"):
            escaped = True
        elif ch == ord('"'):
            if inside:
                strings.append(bytes(current))
                current = bytearray()
            inside = not inside
        elif not inside and ch != ord(" "):
            return None
        elif inside:
            current.append(ch)
    return None if inside else strings


def quote(strings):
    out = []
    for s in strings:
        text = s.decode("utf-8", "replace").replace("\\", "\\\\").replace('"', '\\"')
        out.append('"' + text + '"')
    return " ".join(out)


def error(code, message):
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [],
            "result": None}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("contract: " + (fmt % args) + "\n")

    def reply(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("PUT")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        url = urlparse(self.path)
        if url.path.startswith("/__control/"):
            return self.control(method, url.path[len("/__control/"):])
        with LOCK:
            STATE["stats"]["requests"] += 1
            injected = STATE["fail"].pop(0) if STATE["fail"] else None
        if injected == 429:
            return self.reply(429, error(971, "Please wait and consider throttling your request "
                                              "speed"), {"Retry-After": "1"})
        if injected:
            return self.reply(injected, error(10000, "Internal server error"))
        if self.headers.get("Authorization") != "Bearer " + ARGS.token:
            return self.reply(403, error(10000, "Authentication error"))
        match = re.fullmatch(r"/client/v4/zones/([^/]+)/dns_records(?:/([^/]+))?", url.path)
        if not match or match.group(1) not in ZONES:
            return self.reply(404, error(7003, "Could not route to %s, perhaps your object "
                                               "identifier is invalid?" % url.path))
        zone_id, record_id = match.groups()
        if method == "GET" and record_id is None:
            return self.list(zone_id, parse_qs(url.query))
        if method == "POST" and record_id is None:
            return self.write(zone_id, None, self.body())
        if method == "PUT" and record_id:
            return self.write(zone_id, record_id, self.body())
        if method == "DELETE" and record_id:
            return self.delete(zone_id, record_id)
        return self.reply(405, error(10405, "Method not allowed for this endpoint"))

    def list(self, zone_id, query):
        name = query.get("name", [None])[0]
        rtype = query.get("type", [None])[0]
        try:
            page = int(query.get("page", ["1"])[0])
            per_page = int(query.get("per_page", ["100"])[0])
        except ValueError:
            return self.reply(400, error(1004, "DNS Validation Error"))
        if page < 1 or per_page < 5 or per_page > 5000000:
            return self.reply(400, error(1004, "DNS Validation Error"))
        per_page = min(per_page, ARGS.max_per_page)
        with LOCK:
            STATE["stats"]["reads"] += 1
            matching = sorted(
                (r for r in STATE["records"].values() if r["zone_id"] == zone_id
                 and (name is None or r["name"] == name.lower())
                 and (rtype is None or r["type"] == rtype)),
                key=lambda r: r["created_on"])
        total = len(matching)
        pages = max(1, -(-total // per_page))
        chunk = matching[(page - 1) * per_page: page * per_page]
        info = {"page": page, "per_page": per_page, "count": len(chunk), "total_count": total,
                "total_pages": pages}
        self.reply(200, {"success": True, "errors": [], "messages": [], "result": chunk,
                         "result_info": info})

    def validate(self, zone_id, body, record_id):
        if not isinstance(body, dict):
            return 400, error(9207, "Request body is invalid.")
        rtype, name, content = body.get("type"), body.get("name"), body.get("content")
        if rtype not in SUPPORTED_TYPES:
            return 400, error(9000, "DNS record type is invalid.")
        if not isinstance(name, str) or not name:
            return 400, error(9005, "DNS record name is invalid.")
        if not isinstance(content, str):
            return 400, error(9002, "DNS record content is invalid.")
        zone_name = ZONES[zone_id]
        name = name.lower().rstrip(".")
        if name != zone_name and not name.endswith("." + zone_name):
            return 400, error(9005, "DNS record name is not in the zone.")
        if body.get("proxied") and rtype in {"TXT", "MX", "NS", "SRV", "CAA"}:
            return 400, error(9004, "This record type cannot be proxied.")
        if rtype == "MX" and not isinstance(body.get("priority"), int):
            return 400, error(9100, "MX records must have a priority.")
        if len(body.get("comment") or "") > 100:
            return 400, error(9206, "Comment is too long (max 100 characters).")
        if rtype == "TXT":
            strings = split_quoted(content)
            if strings is None or any(len(s) > 255 for s in strings):
                return 400, error(9008, "Invalid TXT record content.")
            content = quote(strings)
        for other in STATE["records"].values():
            if (other["zone_id"], other["name"], other["type"], other["content"]) == \
                    (zone_id, name, rtype, content) and other["id"] != record_id:
                return 400, error(81058, "An identical record already exists.")
        return None, {"name": name, "type": rtype, "content": content}

    def write(self, zone_id, record_id, body):
        with LOCK:
            if record_id and record_id not in STATE["records"]:
                return self.reply(404, error(81044, "Record does not exist."))
            status, checked = self.validate(zone_id, body, record_id)
            if status:
                return self.reply(status, checked)
            previous = STATE["records"].get(record_id, {})
            record = {
                "id": record_id or uuid.uuid4().hex,
                "zone_id": zone_id, "zone_name": ZONES[zone_id],
                "name": checked["name"], "type": checked["type"], "content": checked["content"],
                "proxiable": checked["type"] in {"A", "AAAA", "CNAME"},
                "proxied": bool(body.get("proxied", False)),
                "ttl": int(body.get("ttl", 1)), "settings": {}, "meta": {},
                "comment": body.get("comment"), "tags": body.get("tags", []),
                "created_on": previous.get("created_on", now()), "modified_on": now(),
            }
            if "priority" in body:
                record["priority"] = body["priority"]
            STATE["records"][record["id"]] = record
            STATE["stats"]["writes"] += 1
        self.reply(200, {"success": True, "errors": [], "messages": [], "result": record})

    def delete(self, zone_id, record_id):
        with LOCK:
            record = STATE["records"].get(record_id)
            if not record or record["zone_id"] != zone_id:
                return self.reply(404, error(81044, "Record does not exist."))
            del STATE["records"][record_id]
            STATE["stats"]["writes"] += 1
        self.reply(200, {"success": True, "errors": [], "messages": [],
                         "result": {"id": record_id}})

    def control(self, method, what):
        if method == "GET" and what == "stats":
            with LOCK:
                return self.reply(200, dict(STATE["stats"]))
        if method == "GET" and what == "records":
            with LOCK:
                records = sorted(STATE["records"].values(), key=lambda r: r["created_on"])
            return self.reply(200, records)
        body = self.body()
        if method == "POST" and what == "fail":
            with LOCK:
                STATE["fail"].extend([body["status"]] * body["count"])
            return self.reply(200, {})
        if method == "POST" and what == "seed":
            with LOCK:
                status, checked = self.validate(body["zone_id"], body, None)
                if status:
                    return self.reply(status, checked)
                record = dict(body, **checked, id=uuid.uuid4().hex, created_on=now(),
                              modified_on=now(), proxied=False, meta={}, settings={},
                              zone_name=ZONES[body["zone_id"]])
                STATE["records"][record["id"]] = record
            return self.reply(200, record)
        return self.reply(404, {})


def main():
    global ARGS, ZONES
    parser = argparse.ArgumentParser()
    parser.add_argument("--token", required=True)
    parser.add_argument("--zone", action="append", required=True, help="ZONE_ID=zone.name")
    parser.add_argument("--max-per-page", type=int, default=5000000)
    ARGS = parser.parse_args()
    ZONES = dict(z.split("=", 1) for z in ARGS.zone)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("listening %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
