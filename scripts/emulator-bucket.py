"""Creates the bucket (fake-gcs-server) or container (Azurite) djgc-tests on
an emulator at 127.0.0.1:PORT, unless it is there already; used by
scripts/services.sh for the tests' emulators and by scripts/bench-cloud.sh
for its in-memory ones.

Usage: python3 scripts/emulator-bucket.py gcs|azure PORT
"""
import base64
import hashlib
import hmac
import json
import sys
import urllib.error
import urllib.request
from email.utils import formatdate

NAME = "djgc-tests"
# Azurite's published development account; its key is public.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")


def gcs_bucket(port):
    base = f"http://127.0.0.1:{port}/storage/v1/b"
    try:
        urllib.request.urlopen(f"{base}/{NAME}", timeout=5)
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise
        request = urllib.request.Request(
            f"{base}?project=djgc", data=json.dumps({"name": NAME}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(request, timeout=5)


def azure_container(port):
    """Signed with Shared Key; 409 means the container is there already."""
    date = formatdate(usegmt=True)
    version = "2021-08-06"
    to_sign = ("PUT\n" + "\n" * 11 + f"x-ms-date:{date}\nx-ms-version:{version}\n"
               f"/{ACCOUNT}/{ACCOUNT}/{NAME}\nrestype:container")
    key = base64.b64decode(ACCOUNT_KEY)
    signature = base64.b64encode(
        hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/{ACCOUNT}/{NAME}?restype=container", method="PUT",
        headers={"x-ms-date": date, "x-ms-version": version,
                 "Authorization": f"SharedKey {ACCOUNT}:{signature}",
                 "Content-Length": "0"})
    try:
        urllib.request.urlopen(request, timeout=5)
    except urllib.error.HTTPError as e:
        if e.code != 409:
            raise


if __name__ == "__main__":
    protocol, port = sys.argv[1], int(sys.argv[2])
    {"gcs": gcs_bucket, "azure": azure_container}[protocol](port)
