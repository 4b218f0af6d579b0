"""Pools against `lambdock up`: reserved concurrency caps workers, callers over the cap wait
then get 429 with the right Reason, idle workers scale to zero, provisioned concurrency is warm at
deploy, and a restarted gateway adopts its warm workers."""

import concurrent.futures
import json
import os
import subprocess
import time

import pytest

from conftest import ACCESS_KEY, LAMBDOCK, SECRET_KEY, python_function


def invoke(client, name, payload):
    r = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    return r, json.loads(r["Payload"].read())


def test_reserved_concurrency_caps_workers_and_callers_wait(up_factory):
    up = up_factory({"slow": python_function(reserved_concurrency=3, timeout_s=10)})
    client = up.client()
    seen = []

    def call(i):
        r, body = invoke(client, "slow", {"action": "sleep", "seconds": 0.5})
        seen.append(up.metric("lambdock_pool_workers", "slow"))
        return r["StatusCode"], "FunctionError" in r

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(call, range(20)))
    assert results == [(200, False)] * 20
    assert max(seen) <= 3
    assert up.metric("lambdock_pool_workers", "slow") <= 3


def test_short_wait_bound_throttles_with_the_reason(up_factory):
    up = up_factory({"slow": python_function(reserved_concurrency=3, timeout_s=10)}, "--acquire-timeout", "0.2")
    client = up.client()

    def call(i):
        try:
            r, _ = invoke(client, "slow", {"action": "sleep", "seconds": 1.5})
            return "ok"
        except client.exceptions.TooManyRequestsException as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            assert e.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
            return "throttled"

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(call, range(10)))
    assert results.count("ok") >= 3
    assert results.count("throttled") >= 1
    assert up.metric("lambdock_throttles_total", "slow") >= 1


def test_scale_to_zero_after_the_idle_time(up_factory):
    up = up_factory({"echo": python_function()}, "--idle-timeout", "1")
    invoke(up.client(), "echo", {"action": "noop"})
    assert up.metric("lambdock_pool_workers", "echo") == 1
    deadline = time.time() + 10
    while up.metric("lambdock_pool_workers", "echo") != 0:
        assert time.time() < deadline, "the idle worker was never destroyed"
        time.sleep(0.2)


def test_provisioned_concurrency_is_warm_at_deploy(up_factory):
    up = up_factory({"warm": python_function(provisioned_concurrency=2)}, "--idle-timeout", "1")
    assert up.metric("lambdock_pool_workers", "warm") == 2
    r, _ = invoke(up.client(), "warm", {"action": "noop"})
    assert up.metric("lambdock_cold_starts_total", "warm") == 0
    time.sleep(2.5)
    assert up.metric("lambdock_pool_workers", "warm") == 2, "provisioned workers are not pruned"


def test_restart_adopts_warm_workers(up_factory, tmp_path):
    up = up_factory({"echo": python_function()})
    client = up.client()
    _, before = invoke(client, "echo", {"action": "echo"})
    up.kill9()
    up.start()
    assert up.metric("lambdock_pool_workers", "echo") == 1, "the live worker is adopted, not duplicated"
    _, after = invoke(up.client(), "echo", {"action": "echo"})
    assert up.metric("lambdock_cold_starts_total", "echo") == 0, "the adopted worker is warm"
    assert after["env"]["AWS_LAMBDA_LOG_STREAM_NAME"] == before["env"]["AWS_LAMBDA_LOG_STREAM_NAME"], "same worker"


def test_circuit_breaker_replays_the_last_failure_without_new_workers(up_factory):
    up = up_factory({"broken": python_function("broken_import.handler")},
                    "--breaker-threshold", "2", "--breaker-recovery", "60")
    client = up.client()
    bodies = []
    for _ in range(4):
        r, body = invoke(client, "broken", {})
        assert (r["StatusCode"], r["FunctionError"]) == (200, "Unhandled")
        bodies.append(body)
    assert all(b["errorType"] == "Runtime.ImportModuleError" for b in bodies)
    assert up.metric("lambdock_circuit_state", "broken") == 1, "open"
    assert up.metric("lambdock_invocations_total", "broken") == 2, "nothing reaches a worker while open"


def test_manifest_hot_reload(up_factory, tmp_path):
    up = up_factory({"one": python_function()})
    client = up.client()
    invoke(client, "one", {"action": "noop"})
    path = up.manifest_path
    m = json.loads(path.read_text())
    m["functions"]["two"] = python_function()
    m["functions"]["one"]["memory_mb"] = 256
    time.sleep(1.1)  # a new modification time
    path.write_text(json.dumps(m))
    deadline = time.time() + 15
    while True:
        names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
        if "two" in names:
            break
        assert time.time() < deadline, "the changed manifest was never deployed"
        time.sleep(0.2)
    r, body = invoke(client, "two", {"action": "echo"})
    assert r["StatusCode"] == 200
    r, body = invoke(client, "one", {"action": "echo"})
    assert body["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256", "the changed function runs its new configuration"
    # A broken manifest is refused; the running deployment stays.
    time.sleep(1.1)
    path.write_text("{not json")
    time.sleep(2.5)
    r, _ = invoke(client, "two", {"action": "noop"})
    assert r["StatusCode"] == 200


def test_ctrl_c_drains_in_flight_and_stops_every_worker(up_factory):
    import signal
    import threading
    up = up_factory({"slow": python_function(timeout_s=10)})
    client = up.client()
    invoke(client, "slow", {"action": "noop"})
    result = {}

    def long_call():
        result["r"] = invoke(client, "slow", {"action": "sleep", "seconds": 1.5})

    t = threading.Thread(target=long_call)
    t.start()
    time.sleep(0.5)
    assert up.metric("lambdock_concurrent_executions", "slow") == 1
    up.proc.send_signal(signal.SIGINT)
    t.join(30)
    r, body = result["r"]
    assert r["StatusCode"] == 200 and body == {"slept": 1.5}, "the in-flight invocation finished"
    assert up.proc.wait(30) == 0
    assert any("stopped every worker" in line for line in up.output)
    # No process of the function is left.
    import os
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if b"AWS_LAMBDA_FUNCTION_NAME=slow\0" in f.read():
                    left.append(pid)
        except OSError:
            pass
    assert not left, f"workers left: {left}"


def test_a_caller_hanging_up_mid_invocation_leaks_no_worker(up_factory):
    import botocore.exceptions
    up = up_factory({"slow": python_function(reserved_concurrency=1, timeout_s=10)})
    impatient = up.client(read_timeout=0.3)
    for _ in range(3):
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            invoke(impatient, "slow", {"action": "sleep", "seconds": 1})
    time.sleep(1.5)
    # As in Lambda, the invocations ran to their end; their worker serves the next caller.
    r, body = invoke(up.client(), "slow", {"action": "noop"})
    assert r["StatusCode"] == 200 and "FunctionError" not in r, body
    assert up.metric("lambdock_pool_workers", "slow") == 1
    workers = subprocess.run(
        [str(LAMBDOCK), "ps", "--endpoint", up.endpoint], capture_output=True, text=True,
        env={**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})
    assert workers.returncode == 0, workers.stderr
    assert sum(" slow " in f" {line} " for line in workers.stdout.splitlines()) == 1, workers.stdout
