#!/usr/bin/env python3
"""A merchant's integration with zhifu, written from docs/merchant-api.md alone, with the
standard library and the `cryptography` package.

It onboards itself through the operator (test set-up), registers an RSA-2048 key, fetches the
platform keys, takes a notification key, creates a native order, prints `CODE <payload>` and
waits for a line `PAID` on stdin (someone pays the code with a wallet), then: receives the
notification on its own HTTP listener, verifies the platform's signature, opens the sealed
resource, queries the order, refunds twice, downloads the day's trade bill and checks its
digest and summary. Prints `OK` and exits 0, or says what failed and exits 1.

    python3 merchant_flow.py http://127.0.0.1:8080 OPERATOR_TOKEN [CERT.pem KEY.pem]

With CERT and KEY, the notification listener serves https with them.
"""

import base64
import hashlib
import http.server
import json
import os
import queue
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

BASE, OPERATOR_TOKEN = sys.argv[1].rstrip("/"), sys.argv[2]
TLS_FILES = sys.argv[3:5]  # optional: CERT KEY, to receive notifications over https
SERIAL = "py-rsa-1"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def fail(what):
    print("FAIL " + what, flush=True)
    sys.exit(1)


def expect(condition, what):
    if not condition:
        fail(what)


def fetch(method, url, body=b"", headers=None):
    request = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def operator(method, path, document):
    body = json.dumps(document).encode()
    status, _, answer = fetch(method, BASE + path, body, {
        "Content-Type": "application/json", "Authorization": "Bearer " + OPERATOR_TOKEN})
    expect(status in (200, 201), f"operator {path}: {status} {answer!r}")
    return json.loads(answer)


# §2: the message is METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n; RSA is PKCS#1 v1.5 SHA-256.
def call(method, target, document=None):
    body = json.dumps(document).encode() if document is not None else b""
    timestamp, nonce = str(int(time.time())), os.urandom(16).hex()
    message = b"\n".join([method.encode(), target.encode(), timestamp.encode(),
                          nonce.encode(), body]) + b"\n"
    signature = base64.b64encode(KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    headers = {"Content-Type": "application/json", "Authorization":
               f'ZHIFU-RSA-SHA256 mchid="{MCHID}",serial_no="{SERIAL}",timestamp="{timestamp}",'
               f'nonce_str="{nonce}",signature="{signature}"'}
    status, answer_headers, answer = fetch(method, BASE + target, body, headers)
    check(answer_headers, answer)
    return status, answer_headers, answer


# §4: the platform signs TIMESTAMP\nNONCE\nBODY\n under the key named by Zhifu-Serial.
def check(headers, body):
    public_key = PLATFORM_KEYS.get(headers.get("Zhifu-Serial"))
    expect(public_key is not None, "a response names an unknown platform key")
    expect(abs(int(headers["Zhifu-Timestamp"]) - time.time()) < 300, "a stale response")
    message = (headers["Zhifu-Timestamp"] + "\n" + headers["Zhifu-Nonce"] + "\n").encode() \
        + body + b"\n"
    signature = base64.b64decode(headers["Zhifu-Signature"], validate=True)
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    else:
        public_key.verify(signature, message)


# The notification endpoint (§6.7): verify, open, answer 200.
EVENTS = queue.Queue()


class Notifications(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            check(self.headers, body)
            event = json.loads(body)
            resource = event["resource"]
            assert resource["algorithm"] == "AEAD_AES_256_GCM"
            plain = AESGCM(NOTIFY_KEY.encode()).decrypt(
                resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]),
                resource["associated_data"].encode())
            EVENTS.put((event, json.loads(plain)))
            self.send_response(200)
        except Exception as error:  # a bad notification is refused; zhifu will retry
            EVENTS.put((None, repr(error)))
            self.send_response(400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Notifications)
scheme = "http"
if TLS_FILES:  # the endpoint over https, with the certificate and key given
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*TLS_FILES)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    scheme = "https"
threading.Thread(target=server.serve_forever, daemon=True).start()
notify_url = f"{scheme}://127.0.0.1:{server.server_address[1]}/notify"

# Set-up by the operator (§7): the merchant and its public key.
MCHID = str(operator("POST", "/api/v1/operator/merchants",
                     {"name": "Python tea house", "discount_rate_bps": 60,
                      "notify_url": notify_url})["merchant_id"])
public_pem = KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
operator("POST", f"/api/v1/operator/merchants/{MCHID}/keys",
         {"serial": SERIAL, "algorithm": "RSA-SHA256", "public_key": public_pem.decode()})

# §6.1: the platform keys, verified with themselves.
status, headers, body = fetch("GET", BASE + "/merchant/v1/platform-keys")
PLATFORM_KEYS = {k["serial"]: serialization.load_pem_public_key(k["public_key"].encode())
                 for k in json.loads(body)["keys"]}
check(headers, body)

# §6.7: the notification key; §6.5: a native order.
status, _, body = call("POST", "/merchant/v1/notify-key")
expect(status == 200, f"notify-key: {status}")
NOTIFY_KEY = json.loads(body)["notify_key"]
out_trade_no = "PY" + os.urandom(6).hex()
status, _, body = call("POST", "/merchant/v1/orders/native",
                       {"out_trade_no": out_trade_no, "description": "Oolong",
                        "amount_minor": 8888, "currency": "CNY"})
expect(status == 201, f"native order: {status} {body!r}")
order = json.loads(body)
expect(order["trade_state"] == "NOTPAY", "a new order is NOTPAY")
print("CODE " + order["code_url"], flush=True)
expect(sys.stdin.readline().strip() == "PAID", "told that the code was paid")

event, resource = EVENTS.get(timeout=20)
expect(event is not None, f"the notification verifies and opens: {resource}")
expect(event["event_type"] == "TRANSACTION.SUCCESS", "a payment event")
expect(resource["out_trade_no"] == out_trade_no and resource["trade_state"] == "SUCCESS",
       f"the event is the payment: {resource}")
payer = resource["payer"]

status, _, body = call("GET", "/merchant/v1/orders/out-trade-no/" + out_trade_no)
queried = json.loads(body)
expect(status == 200 and queried["trade_state"] == "SUCCESS", f"query: {body!r}")
expect(queried["fee_minor"] == 53, "0.6 % of 88.88 is 53.328 fen: 53")

for number, amount in (("PR1", 1000), ("PR2", 888)):
    status, _, body = call("POST", "/merchant/v1/refunds",
                           {"out_trade_no": out_trade_no, "out_refund_no": number,
                            "amount_minor": amount})
    expect(status == 201 and json.loads(body)["status"] == "SUCCESS", f"refund: {body!r}")
status, _, body = call("POST", "/merchant/v1/refunds",
                       {"out_trade_no": out_trade_no, "out_refund_no": "PR3",
                        "amount_minor": 7001})
expect(status == 422 and json.loads(body)["code"] == "REFUND_EXCEEDS_PAID", "over-refund")

# §6.8: today's trade bill, China Standard Time.
today = datetime.now(timezone(timedelta(hours=8))).strftime("%Y-%m-%d")
status, headers, body = call("GET", "/merchant/v1/bills/trade?date=" + today)
expect(status == 200, f"bill: {status}")
expect(hashlib.sha256(body).hexdigest() == headers["Zhifu-Bill-SHA256"], "the bill's digest")
rows = body.decode().split("\r\n")
expect(rows[-1] == "", "lines end in CRLF")
expect(rows[-2] == "1,88.88,18.88,0.42,yes", f"summary row: {rows[-2]}")
payments = [r for r in rows if ",SUCCESS," in r]
expect(len(payments) == 1 and out_trade_no in payments[0] and payer in payments[0],
       "the payment row names the order and the pseudonymous payer")
expect(len([r for r in rows if ",REFUND," in r]) == 2, "two refund rows")
print("OK", flush=True)
