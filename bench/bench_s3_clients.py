"""Put/get MB/s of three S3 clients against moto's server on 127.0.0.1 (decision 0009).

Run: .venv/bin/python bench/bench_s3_clients.py [--mb 64] [--rounds 3]

Each round uploads and downloads the same random bytes with boto3 (managed transfer),
obstore and pyarrow.fs.S3FileSystem (streams), then through modelcycle's s3:// artifact store
(hash, spool, upload; streamed and re-hashed read); prints best and median MB/s over
interleaved rounds and modelcycle's ratio to plain boto3 (the issue's target: >= 0.8x).
moto keeps objects in memory, so the figures measure the client plus moto's HTTP handling on
this machine, not a network: what they rank is per-byte overhead of each client.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import time
from collections.abc import Callable

from moto.server import ThreadedMotoServer


def _timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1"
    )
    payload = os.urandom(args.mb << 20)
    mb = len(payload) / (1 << 20)

    import boto3
    import obstore
    from obstore.store import S3Store
    from pyarrow import fs

    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket="bench")

    def boto_put() -> None:
        s3.upload_fileobj(io.BytesIO(payload), "bench", "boto")

    def boto_get() -> None:
        body = s3.get_object(Bucket="bench", Key="boto")["Body"]
        while body.read(1 << 20):
            pass

    ob = S3Store(
        "bench", endpoint=endpoint, region="us-east-1", client_options={"allow_http": True}
    )

    def ob_put() -> None:
        obstore.put(ob, "obstore", io.BytesIO(payload), chunk_size=8 << 20)

    def ob_get() -> None:
        for _chunk in obstore.get(ob, "obstore").stream(min_chunk_size=1 << 20):
            pass

    pa = fs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1")

    def pa_put() -> None:
        with pa.open_output_stream("bench/pyarrow") as out:
            view = memoryview(payload)
            for i in range(0, len(view), 1 << 20):
                out.write(view[i : i + (1 << 20)])

    def pa_get() -> None:
        with pa.open_input_stream("bench/pyarrow") as src:
            while src.read(1 << 20):
                pass

    os.environ["AWS_ENDPOINT_URL"] = endpoint
    from modelcycle.store import open_artifact_store

    store = open_artifact_store("s3://bench/mc")
    sha = store.put_bytes(payload).sha256

    def mc_put() -> None:
        # The blob already exists after the first round; measure the whole path every time.
        s3.delete_object(Bucket="bench", Key=f"mc/objects/{sha[:2]}/{sha}")
        store.put_stream(io.BytesIO(payload))

    def mc_get() -> None:
        with store.open(sha) as fh:
            while fh.read(1 << 20):
                pass

    clients = (
        ("boto3", boto_put, boto_get),
        ("obstore", ob_put, ob_get),
        ("pyarrow", pa_put, pa_get),
        ("modelcycle", mc_put, mc_get),
    )
    # Rounds interleave the clients, so a busy spell on a shared machine hits all of them.
    times: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n, _, _ in clients}
    for _ in range(args.rounds):
        for name, put, get in clients:
            times[name][0].append(_timed(put))
            times[name][1].append(_timed(get))
    print(f"{mb:.0f} MiB object, {args.rounds} interleaved rounds, moto at {endpoint}")
    print(f"{'client':<11} {'put MB/s best':>14} {'median':>7} {'get MB/s best':>14} {'median':>7}")
    for name, (puts, gets) in times.items():
        print(
            f"{name:<11} {mb / min(puts):14.1f} {mb / statistics.median(puts):7.1f}"
            f" {mb / min(gets):14.1f} {mb / statistics.median(gets):7.1f}"
        )
    plain = statistics.median(times["boto3"][0]), statistics.median(times["boto3"][1])
    ours = statistics.median(times["modelcycle"][0]), statistics.median(times["modelcycle"][1])
    print(
        "modelcycle / plain boto3 (medians): "
        f"put {plain[0] / ours[0]:.2f}x, get {plain[1] / ours[1]:.2f}x"
    )
    server.stop()


if __name__ == "__main__":
    main()
