"""Verify a funnelgate ledger with nothing from funnelgate: Python's standard library (sqlite3,
hashlib, json) and an independent RFC 8785 implementation (`rfc8785` from PyPI).

    python verify_ledger.py sqlite PATH FUNNEL
    python verify_ledger.py rows FUNNEL < rows.jsonl   (one JSON object per row, any store)

Prints `ok <entries>` and exits 0 when the chain verifies; otherwise prints the first broken
entry and exits 1. Hash scheme 2: sha256_hex(prev_hash + "\n" + JCS(body)) with body
{config_hash, funnel, kind, payload, recorded_at, seq, v: 2}.
"""

import hashlib
import json
import sqlite3
import sys

import rfc8785

GENESIS = "0" * 64


def rows_from_sqlite(path, funnel):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    cur = con.execute(
        "SELECT funnel, seq, kind, recorded_at, config_hash, payload, prev_hash, hash_scheme, hash "
        "FROM ledger WHERE funnel = ? ORDER BY seq",
        (funnel,),
    )
    names = [d[0] for d in cur.description]
    for row in cur:
        yield dict(zip(names, row))


def verify(rows):
    prev = GENESIS
    expected = 1
    for row in rows:
        seq = row["seq"]
        if seq != expected:
            return f"entry {expected} is missing (next is {seq})"
        if row["prev_hash"] != prev:
            return f"entry {seq}: prev_hash does not link to entry {seq - 1}"
        if row["hash_scheme"] != 2:
            return f"entry {seq}: hash scheme {row['hash_scheme']} is not RFC 8785"
        body = {
            "config_hash": row["config_hash"],
            "funnel": row["funnel"],
            "kind": row["kind"],
            "payload": json.loads(row["payload"]),
            "recorded_at": row["recorded_at"],
            "seq": seq,
            "v": 2,
        }
        text = prev.encode() + b"\n" + rfc8785.dumps(body)
        digest = hashlib.sha256(text).hexdigest()
        if digest != row["hash"]:
            return f"entry {seq}: hash {row['hash'][:12]} does not match recomputed {digest[:12]}"
        prev = row["hash"]
        expected += 1
    return expected - 1


def main():
    if sys.argv[1] == "sqlite":
        result = verify(rows_from_sqlite(sys.argv[2], sys.argv[3]))
    else:
        result = verify(json.loads(line) for line in sys.stdin if line.strip())
    if isinstance(result, int):
        print(f"ok {result}")
        return 0
    print(result)
    return 1


if __name__ == "__main__":
    sys.exit(main())
