#!/usr/bin/env python3
"""Client side of docker/test.sh, using the Python `etcd3` client (etcd3==0.12.0).

    etcd_client.py smoke  HOST:PORT
        put /test/key1, /test/key2 and print get_prefix('/test')
    etcd_client.py writer HOST:PORT ACKED_FILE STOP_FILE
        put /load/<n> = v<n> in a loop until STOP_FILE exists; append
        "<n> <unix time>" to ACKED_FILE for every acknowledged put. A failed
        put is not retried under the same key (its outcome is unknown); the
        writer reconnects and moves on to the next key.
    etcd_client.py verify HOST:PORT ACKED_FILE
        check every acknowledged key is present with its value

Over TLS when ETCD_CACERT (and ETCD_CERT, ETCD_KEY) name PEM files.
"""
import os
import sys
import time

import etcd3


def connect(endpoint, timeout=2):
    host, port = endpoint.rsplit(":", 1)
    # TLS (docker/tls-test.sh): the CA to verify the members with, and the
    # client certificate, from the environment.
    tls = {k: os.environ[v] for k, v in
           (("ca_cert", "ETCD_CACERT"), ("cert_cert", "ETCD_CERT"), ("cert_key", "ETCD_KEY")) if os.environ.get(v)}
    return etcd3.client(host=host, port=int(port), timeout=timeout, **tls)


def smoke(endpoint):
    c = connect(endpoint, timeout=5)
    c.put("/test/key1", "hey key1")
    c.put("/test/key2", "hey key2")
    got = {}
    for value, meta in c.get_prefix("/test"):
        key, value = meta.key.decode(), value.decode()
        got[key] = value
        print(f"{key} = {value}")
    want = {"/test/key1": "hey key1", "/test/key2": "hey key2"}
    if got != want:
        sys.exit(f"get_prefix('/test') returned {got}, want {want}")


def writer(endpoint, acked_path, stop_path):
    c = connect(endpoint)
    n = 0
    with open(acked_path, "a", buffering=1) as acked:
        while not os.path.exists(stop_path):
            n += 1
            try:
                c.put(f"/load/{n:08d}", f"v{n}")
            except Exception as e:  # grpc errors, timeouts: outcome unknown
                print(f"writer: put {n} failed: {type(e).__name__}", file=sys.stderr)
                try:
                    c.close()
                except Exception:
                    pass
                time.sleep(0.1)
                # A fresh channel reconnects at once (nginx picks a live
                # member) instead of waiting out gRPC's reconnect backoff.
                c = connect(endpoint)
                continue
            acked.write(f"{n} {time.time():.3f}\n")


def verify(endpoint, acked_path):
    with open(acked_path) as f:
        acked = [int(line.split()[0]) for line in f if line.strip()]
    c = connect(endpoint, timeout=10)
    # Linearizable range read of the whole prefix (through the leader).
    have = {m.key.decode(): v.decode() for v, m in c.get_prefix("/load/")}
    missing = [n for n in acked if have.get(f"/load/{n:08d}") != f"v{n}"]
    print(f"verify: {len(acked)} acknowledged writes, {len(have)} keys present, {len(missing)} missing")
    if missing:
        sys.exit(f"lost acknowledged writes: {missing[:20]}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"smoke": smoke, "writer": writer, "verify": verify}[cmd](*args)
