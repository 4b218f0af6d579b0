"""SAM templates end to end: `lambdock up -t` with the example app, every function through boto3
and its routes, `lambdock deploy` switching a running deployment with no failed invocation, and
bad templates refused without touching what runs."""

import json
import re
import os
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import ACCESS_KEY, LAMBDOCK, REGION, REPO, SECRET_KEY, Up

APP = REPO / "examples/app"
# Debug builds of the Rust function: the test suite has its dependencies built already.
PROFILE = ["--cargo-profile", "dev"]


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, json.loads(r.read())


def invoke(client, name, event):
    out = client.invoke(FunctionName=name, Payload=json.dumps(event))
    return out, json.loads(out["Payload"].read())


def deploy(up, template, build_dir, *extra):
    return subprocess.run(
        [str(LAMBDOCK), "deploy", "-t", str(template), "--gateway", up.endpoint,
         "--s3-endpoint", up.s3_endpoint, "--dynamodb-endpoint", up.dynamodb,
         "--build-dir", str(build_dir), *PROFILE, *extra],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "LAMBDOCK_ACCESS_KEY": ACCESS_KEY, "LAMBDOCK_SECRET_KEY": SECRET_KEY},
    )


def local_template(tmp_path, edit=lambda t: t):
    """The example template with absolute code paths, changed by `edit`."""
    text = (APP / "template.yaml").read_text()
    for folder in ("hello", "ticker", "items-rust"):
        text = text.replace(f"CodeUri: {folder}/", f"CodeUri: {APP / folder}/")
    path = tmp_path / "template.yaml"
    path.write_text(edit(text))
    return path


@pytest.fixture
def app(tmp_path):
    up = Up(None, tmp_path / "data", "-t", str(APP / "template.yaml"), *PROFILE,
            "--schedule-minute-seconds", "1", ready_timeout=600)
    yield up
    up.stop()


def test_every_function_answers_through_boto3_and_its_routes(app):
    client = app.client()
    out, body = invoke(client, "hello:live", {"queryStringParameters": {"name": "boto"}})
    assert out["StatusCode"] == 200 and out["ExecutedVersion"] == "1"
    result = json.loads(body["body"])
    assert result["message"] == "Hello, boto!"
    # The function reached S3 and DynamoDB with plain boto3 clients.
    assert result["stored_object"] == {"name": "boto"} and result["stored_item"] == "boto"
    keys = [o["Key"] for o in app.s3().list_objects_v2(Bucket="lambdock-uploads")["Contents"]]
    assert f"visits/{result['visit']}.json" in keys

    out, body = invoke(client, "items", {"pathParameters": {"id": "7"}, "routeKey": "GET /items/{id}"})
    assert "FunctionError" not in out
    assert json.loads(body["body"])["id"] == "7"

    out, body = invoke(client, "ticker", {"time": "2026-12-03T00:00:00Z", "source": "test"})
    assert "FunctionError" not in out and body["ticks"] >= 1 and body["source"] == "test"

    api = f"http://127.0.0.1:{app.api_port}"
    status, body = get(f"{api}/hello?name=web")
    assert status == 200 and body["message"] == "Hello, web!"
    status, body = get(f"{api}/items/42")
    assert status == 200 and body == {**body, "id": "42", "greeting": "Hello", "route": "GET /items/{id}"}

    # The schedule (a minute is a second here) runs the ticker with EventBridge's event.
    import boto3
    ddb = boto3.client("dynamodb", endpoint_url=app.dynamodb, region_name=REGION,
                       aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    deadline = time.time() + 60
    while True:
        item = ddb.get_item(TableName="lambdock-visits", Key={"pk": {"S": "ticks"}}).get("Item", {})
        if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", item.get("last_time", {}).get("S", "")) \
                and item["last_time"]["S"] != "2026-12-03T00:00:00Z":
            break
        assert time.time() < deadline, f"the schedule never ran the ticker: {item}"
        time.sleep(0.5)


def test_redeploy_switches_with_no_failed_invocation(app, tmp_path):
    client = app.client(read_timeout=120)
    results, failures, stop = [], [], threading.Event()

    def loop():
        while not stop.is_set():
            try:
                out, body = invoke(client, "items", {"pathParameters": {"id": "1"}})
                if "FunctionError" in out:
                    failures.append(body)
                else:
                    results.append(json.loads(body["body"])["greeting"])
            except Exception as e:  # noqa: BLE001 - any failure counts
                failures.append(repr(e))

    threads = [threading.Thread(target=loop) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        deadline = time.time() + 30
        while len(results) < 10:
            assert time.time() < deadline and not failures, failures
            time.sleep(0.05)
        # Into the build directory `up -t` used: the running deployment's code stays untouched.
        build = tmp_path / "data" / "build"
        first = set((build / "deployments").iterdir())
        assert len(first) == 1
        done = deploy(app, APP / "template.yaml", build, "--parameter-overrides", "Greeting=Howdy")
        assert done.returncode == 0, done.stderr
        # The bucket and the table exist already: a second deploy changes nothing.
        assert re.search(r"bucket lambdock-uploads\s+unchanged", done.stdout), done.stdout
        assert re.search(r"table\s+lambdock-visits\s+unchanged", done.stdout), done.stdout
        switched = len(results)
        deadline = time.time() + 30
        while len(results) < switched + 20:
            assert time.time() < deadline, "invocations stopped after the deploy"
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert results[0] == "Hello" and set(results[-10:]) == {"Howdy"}
    _, body = get(f"http://127.0.0.1:{app.api_port}/hello?name=after")
    assert body["message"] == "Howdy, after!"
    # The replaced deployment's bundles outlive its in-flight invocations, until the next deploy.
    second = set((build / "deployments").iterdir())
    assert first < second and len(second) == 2
    done = deploy(app, APP / "template.yaml", build, "--parameter-overrides", "Greeting=Hi")
    assert done.returncode == 0, done.stderr
    third = set((build / "deployments").iterdir())
    assert len(third) == 2 and not first & third and second & third
    _, body = get(f"http://127.0.0.1:{app.api_port}/hello?name=again")
    assert body["message"] == "Hi, again!"


def test_a_second_up_on_the_same_data_dir_is_refused_and_touches_nothing(app, tmp_path):
    bundles = set((tmp_path / "data" / "build" / "deployments").iterdir())
    second = subprocess.run(
        [str(LAMBDOCK), "up", "-t", str(APP / "template.yaml"), *PROFILE,
         "--data-dir", str(tmp_path / "data"), "--aws-port", "0", "--api-port", "0",
         "--s3-port", "0", "--dynamodb-port", "0"],
        capture_output=True, text=True, timeout=60)
    assert second.returncode != 0
    assert "another lambdock up is running on the data directory" in second.stderr, second.stderr
    assert set((tmp_path / "data" / "build" / "deployments").iterdir()) == bundles
    out, body = invoke(app.client(), "items", {"pathParameters": {"id": "3"}})
    assert "FunctionError" not in out and json.loads(body["body"])["id"] == "3"


def test_a_changed_table_is_reported_and_left_alone(app, tmp_path):
    template = local_template(tmp_path, lambda t: t.replace(
        "        - AttributeName: pk\n          KeyType: HASH",
        "        - AttributeName: pk\n          KeyType: HASH\n        - AttributeName: sk\n          KeyType: RANGE",
    ).replace(
        "        - AttributeName: pk\n          AttributeType: S",
        "        - AttributeName: pk\n          AttributeType: S\n        - AttributeName: sk\n          AttributeType: S",
    ))
    done = deploy(app, template, tmp_path / "build")
    assert done.returncode == 0, done.stderr
    assert "table lambdock-visits exists and differs: key schema is HASH pk but the template says HASH pk, RANGE sk" in done.stderr
    assert re.search(r"table\s+lambdock-visits\s+differs", done.stdout)
    import boto3
    ddb = boto3.client("dynamodb", endpoint_url=app.dynamodb, region_name=REGION,
                       aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    keys = ddb.describe_table(TableName="lambdock-visits")["Table"]["KeySchema"]
    assert keys == [{"AttributeName": "pk", "KeyType": "HASH"}]


@pytest.mark.parametrize("case, edit, message", [
    ("yaml-syntax", lambda t: t.replace("Resources:\n", "Resources:\n  - broken: [\n", 1),
     r":\d+:\d+: syntax error"),
    ("unknown-intrinsic", lambda t: t.replace("!Ref Greeting", "!Frob Greeting"),
     r":\d+:\d+: unknown tag !Frob"),
    ("missing-code", lambda t: t.replace(f"{APP}/ticker/", "/nonexistent/ticker/"),
     r":\d+:\d+: resource TickerFunction: CodeUri \"/nonexistent/ticker/\": no such folder"),
    ("unsupported-runtime", lambda t: t.replace("Runtime: python3.12", "Runtime: python2.7", 1),
     r":\d+:\d+: resource HelloFunction: runtime python2.7 is not supported"),
])
def test_a_bad_template_is_refused_and_the_running_deployment_stays(app, tmp_path, case, edit, message):
    template = local_template(tmp_path, edit)
    done = deploy(app, template, tmp_path / "build")
    assert done.returncode != 0
    assert re.search(re.escape(str(template)) + message, done.stderr), done.stderr
    _, body = get(f"http://127.0.0.1:{app.api_port}/hello?name=still")
    assert body["message"] == "Hello, still!"
