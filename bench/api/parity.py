"""Checks, before the load runs of scripts/bench-api.sh, that the peer answers like Orbas: the same list
page for the same query and token, and the same created task (ids and timestamps aside) with `Location`
and `ETag`. Prints one line per check; the last line is `CREATED <orbas task id> <peer task id>` (ids
empty where a create failed) so the script can compare the two audit rows. Never fails the run: a
difference is reported, and the script's own 2xx checks decide whether a row is measured.

Usage: parity.py ORBAS_URL PEER_URL LIST_PATH CREATE_PATH  (token in BENCH_TOKEN, body in BENCH_BODY)
"""

import json
import os
import re
import sys
import urllib.error
import urllib.request

VOLATILE = ("id", "created_at", "updated_at")


def call(base: str, method: str, path: str, body: str | None) -> tuple[int, dict, object]:
    headers = {"Authorization": f"Bearer {os.environ['BENCH_TOKEN']}"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = body.encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = raw.decode(errors="replace")[:200]
        return e.code, dict(e.headers), payload


def first_difference(a: object, b: object, where: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys()):
            if key not in a or key not in b:
                return f"{where}/{key}: only in {'orbas' if key in a else 'peer'}"
            found = first_difference(a[key], b[key], f"{where}/{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{where}/{i}")
            if found:
                return found
        return None
    return None if a == b else f"{where or '/'}: orbas {a!r} vs peer {b!r}"


def check_list(orbas: str, peer: str, path: str) -> None:
    (s1, _, b1), (s2, _, b2) = call(orbas, "GET", path, None), call(peer, "GET", path, None)
    if (s1, s2) != (200, 200):
        print(f"parity GET {path}: not compared (orbas HTTP {s1}, peer HTTP {s2})")
        return
    diff = first_difference(b1, b2)
    count = len(b1.get("items", [])) if isinstance(b1, dict) else 0
    print(f"parity GET {path}: " + (f"identical ({count} items)" if diff is None else f"DIFFERENT at {diff}"))


def created(name: str, base: str, path: str, body: str) -> dict | None:
    status, headers, record = call(base, "POST", path, body)
    if status != 201 or not isinstance(record, dict):
        print(f"parity POST {path}: {name} answered HTTP {status}: {json.dumps(record)[:200]}")
        return None
    headers = {k.lower(): v for k, v in headers.items()}
    if headers.get("location") != f"{path}/{record.get('id')}":
        print(f"parity POST {path}: {name} Location is {headers.get('location')!r}")
    if not re.fullmatch(r'"[0-9a-f]{24}"', headers.get("etag", "")):
        print(f"parity POST {path}: {name} ETag is {headers.get('etag')!r}")
    return record


def check_create(orbas: str, peer: str, path: str, body: str) -> tuple[str, str]:
    a, b = created("orbas", orbas, path, body), created("peer", peer, path, body)
    if a is not None and b is not None:
        diff = first_difference(*({k: v for k, v in r.items() if k not in VOLATILE} for r in (a, b)))
        print(f"parity POST {path}: " + ("identical records (ids and timestamps aside)" if diff is None
                                         else f"DIFFERENT at {diff}"))
    return (a or {}).get("id", ""), (b or {}).get("id", "")


def main() -> None:
    orbas, peer, list_path, create_path = sys.argv[1:5]
    check_list(orbas, peer, list_path)
    ids = check_create(orbas, peer, create_path, os.environ["BENCH_BODY"])
    print("CREATED", *ids)


if __name__ == "__main__":
    main()
