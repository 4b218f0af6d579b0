"""Asynchronous (Event) invocations against `lambdock up`: 202 only once durable, delivery,
Lambda's retries, and every accepted event delivered after the gateway is killed with -9."""

import concurrent.futures
import json
import time
import uuid

import pytest

from pathlib import Path

from conftest import python_function


@pytest.fixture
def record_file():
    # Not under /tmp (isolated sandboxes get a private /tmp) nor in the checkout (which may be).
    directory = Path("/var/tmp/lambdock-test")
    directory.mkdir(exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}.txt"
    path.touch()
    yield path
    path.unlink(missing_ok=True)


def lines(path):
    return [l for l in path.read_text().splitlines() if l]


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def send(client, event, name="rec"):
    r = client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(event).encode())
    assert r["StatusCode"] == 202
    assert r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    return r


def test_event_is_accepted_then_delivered(up_factory, record_file):
    up = up_factory({"rec": python_function()})
    send(up.client(), {"action": "record", "id": "e1", "path": str(record_file)})
    wait_for(lambda: lines(record_file) == ["e1"], what="delivery")


def test_function_errors_are_retried_twice(up_factory, record_file):
    up = up_factory({"rec": python_function()}, "--async-retry-delays", "0.3,0.6")
    send(up.client(), {"action": "record_then_fail", "id": "f1", "path": str(record_file)})
    wait_for(lambda: len(lines(record_file)) == 3, what="three attempts")
    time.sleep(1.5)
    assert lines(record_file) == ["f1", "f1", "f1"], "two retries, then the event is discarded"
    assert "lambdock_async_queue_depth 0" in up.metrics()


def test_every_accepted_event_survives_kill_9(up_factory, record_file):
    up = up_factory({"rec": python_function(reserved_concurrency=2)})
    accepted = []

    def submit(i):
        try:
            send(up.client(), {"action": "record", "id": f"ev-{i}", "path": str(record_file), "sleep": 0.2})
            return f"ev-{i}"
        except Exception:
            return None  # refused while the gateway was down: never accepted

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(submit, i) for i in range(120)]
        # Kill the gateway while events are still being accepted and delivered.
        wait_for(lambda: sum(f.done() for f in futures) >= 60, what="60 answers")
        up.kill9()
        accepted += [f.result() for f in futures if f.result()]
    delivered_before = set(lines(record_file))
    assert len(accepted) >= 60
    assert len(delivered_before) < len(accepted), "the kill came while events were queued"
    up.start()
    client = up.client()
    i = 1000
    while len(accepted) < 200:
        send(client, {"action": "record", "id": f"ev-{i}", "path": str(record_file)})
        accepted.append(f"ev-{i}")
        i += 1
    wait_for(lambda: set(accepted) <= set(lines(record_file)), timeout=120, what="every accepted event")
