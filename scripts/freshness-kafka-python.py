"""Freshness as a third-party producer sees it (scripts/bench-freshness --kafka-python).

kafka-python, with its defaults (acks=all, no linger), produces copies of the canonical order
with fresh uids at a steady rate; every SAMPLE-th order is asked for by uid every 5 ms, from the
moment kafka-python reports its acknowledgement, until the first 200. Prints p50, p99 and max
of that time, and the p99 of every 10 s of the stream. The pollers are plain threads with one
keep-alive connection each.

Usage: freshness-kafka-python.py BROKERS TOPIC HTTP_PORT RATE SECONDS SAMPLE
"""

import datetime
import http.client
import json
import math
import pathlib
import queue
import sys
import threading
import time
import uuid

from kafka import KafkaProducer

POLL_EVERY = 0.005
GIVE_UP_AFTER = 10.0
POLLERS = 8
WINDOW = 10.0
CANONICAL = pathlib.Path(__file__).resolve().parent.parent / "tests/data/canonical-order.json"


def order(template, uid):
    """The canonical order under a new uid, created now."""
    body = dict(template, order_uid=uid)
    body["payment"] = dict(template["payment"], transaction=uid)
    now = datetime.datetime.now(datetime.timezone.utc)
    body["date_created"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(body).encode()


def poll(port, todo, latencies, failures):
    """Takes (uid, acked) pairs from `todo` and times each until its first 200; appends
    (acked, latency) to `latencies`."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    while (item := todo.get()) is not None:
        uid, acked = item
        while True:
            connection.request("GET", f"/orders/uid/{uid}")
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                latencies.append((acked, time.monotonic() - acked))
                break
            if response.status != 404 or time.monotonic() - acked > GIVE_UP_AFTER:
                failures.append(f"{uid}: {response.status} after {time.monotonic() - acked:.1f} s")
                break
            time.sleep(POLL_EVERY)


def main():
    brokers, topic, port, rate, seconds, sample = sys.argv[1:7]
    port, rate, seconds, sample = int(port), float(rate), float(seconds), int(sample)
    template = json.loads(CANONICAL.read_text())
    producer = KafkaProducer(bootstrap_servers=brokers, acks="all")
    todo, latencies, failures = queue.Queue(), [], []
    pollers = [
        threading.Thread(target=poll, args=(port, todo, latencies, failures), daemon=True)
        for _ in range(POLLERS)
    ]
    for poller in pollers:
        poller.start()
    started, produced = time.monotonic(), 0
    while time.monotonic() - started < seconds:
        due = int((time.monotonic() - started) * rate)
        while produced < due:
            uid = uuid.uuid4().hex
            sent = producer.send(topic, key=uid.encode(), value=order(template, uid))
            if produced % sample == 0:
                sent.add_callback(lambda _metadata, uid=uid: todo.put((uid, time.monotonic())))
                sent.add_errback(lambda error, uid=uid: failures.append(f"{uid}: {error}"))
            produced += 1
        time.sleep(0.001)
    producer.flush()
    for _ in pollers:
        todo.put(None)
    for poller in pollers:
        poller.join()
    if failures:
        sys.exit(f"{len(failures)} orders failed, first: {failures[0]}")
    if not latencies:
        sys.exit("no order was polled")
    windows = {}
    for acked, latency in latencies:
        # The last few acknowledged after the stream's end count in its last window.
        index = min(int((acked - started) // WINDOW), max(0, math.ceil(seconds / WINDOW) - 1))
        windows.setdefault(index, []).append(latency)
    latencies = sorted(latency for _, latency in latencies)

    def quantile_ms(values, quantile):
        return values[min(len(values) - 1, int(len(values) * quantile))] * 1e3

    def at(quantile):
        return quantile_ms(latencies, quantile)

    print(
        f"kafka-python: {produced} orders at {rate:.0f} orders/s in {seconds:.0f} s, "
        f"{len(latencies)} polled every {POLL_EVERY * 1e3:.0f} ms"
    )
    print(
        f"broker ack -> first 200 on /orders/uid/{{uid}}: p50 {at(0.5):.1f} ms, "
        f"p99 {at(0.99):.1f} ms, max {latencies[-1] * 1e3:.1f} ms"
    )
    by_window = " / ".join(
        f"{quantile_ms(sorted(windows[index]), 0.99):.0f}" for index in sorted(windows)
    )
    print(f"p99 by {WINDOW:.0f} s of stream: {by_window}")


if __name__ == "__main__":
    main()
