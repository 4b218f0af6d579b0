"""Pools against `lambdock up`: reserved concurrency caps workers, callers over the cap wait
then get 429 with the right Reason, idle workers scale to zero, provisioned concurrency is warm at
deploy, and a restarted gateway adopts its warm workers."""

import concurrent.futures
import json
import time

import pytest

from conftest import python_function


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
