"""The Lambda Invoke API against `lambdock up`, with boto3 and the AWS CLI as callers: every row
of A3.2/A3.3 that applies on-prem, asserted on status, headers and body."""

import base64
import datetime
import json
import subprocess

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
import urllib.request
import urllib.error

from conftest import ACCESS_KEY, REGION, REPO, SECRET_KEY, python_function, rust_function


@pytest.fixture
def up(up_factory, tmp_path):
    return up_factory({
        "echo": python_function(timeout_s=2, versions=["1"], aliases={"live": "1"}),
        "rust": rust_function(tmp_path, timeout_s=2),
        "broken": python_function("broken_import.handler"),
    })


def invoke(client, name, payload, **kw):
    r = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **kw)
    body = r["Payload"].read()
    return r, json.loads(body) if body else None


def test_success_headers_and_body(up):
    r, body = invoke(up.client(), "echo", {"action": "echo", "n": 1})
    assert r["StatusCode"] == 200
    assert "FunctionError" not in r
    assert r["ExecutedVersion"] == "$LATEST"
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-requestid"] == body["request_id"]
    assert headers["x-amzn-trace-id"].startswith("Root=1-")
    assert body["trace_id"] == headers["x-amzn-trace-id"], "the function sees the trace id"
    assert body["event"] == {"action": "echo", "n": 1}
    assert body["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:echo"
    assert body["env"]["AWS_ACCESS_KEY_ID"] if "AWS_ACCESS_KEY_ID" in body["env"] else True


def test_no_payload_is_an_empty_object(up):
    # Lambda gives the function `{}` when the caller sends no payload, synchronously or not.
    client = up.client()
    for name in ("echo", "rust"):
        r = client.invoke(FunctionName=name)
        assert "FunctionError" not in r, r["Payload"].read()
        assert json.loads(r["Payload"].read())["event"] == {}
    assert client.invoke(FunctionName="echo", InvocationType="Event")["StatusCode"] == 202


def test_trace_id_and_client_context_pass_through(up):
    trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    cc = base64.b64encode(json.dumps({"custom": {"k": "v"}, "env": {}, "client": {}}).encode()).decode()
    client = up.client()

    def add_trace(request, **kwargs):
        request.headers["X-Amzn-Trace-Id"] = trace

    client.meta.events.register("before-sign.lambda.Invoke", add_trace)
    r, body = invoke(client, "echo", {"action": "echo"}, ClientContext=cc)
    assert body["trace_id"] == trace
    assert r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-trace-id"] == trace
    assert body["client_context"]["custom"] == {"k": "v"}


def test_function_error_timeout_crash_init(up):
    client = up.client()
    r, body = invoke(client, "echo", {"action": "error", "message": "bad"})
    assert (r["StatusCode"], r["FunctionError"]) == (200, "Unhandled")
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "bad"

    r, body = invoke(client, "echo", {"action": "sleep", "seconds": 5})
    assert r["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert body["errorMessage"].endswith("Task timed out after 2.00 seconds")
    assert body["errorMessage"] == f"RequestId: {r['ResponseMetadata']['RequestId']} Error: Task timed out after 2.00 seconds"

    r, body = invoke(client, "rust", {"action": "exit", "code": 3})
    assert r["FunctionError"] == "Unhandled"
    assert body == {"errorMessage": f"RequestId: {r['ResponseMetadata']['RequestId']} Error: Runtime exited with error: exit status 3",
                    "errorType": "Runtime.ExitError"}

    r, body = invoke(client, "broken", {})
    assert (r["StatusCode"], r["FunctionError"]) == (200, "Unhandled")
    assert body["errorType"] == "Runtime.ImportModuleError"

    # After each failure the next invocation works, on a fresh worker.
    for name in ["echo", "rust"]:
        r, body = invoke(client, name, {"action": "noop"})
        assert (r["StatusCode"], body, "FunctionError" in r) == (200, {}, False)


@pytest.mark.parametrize("name", [
    "nope", "nope:1", "echo:9", "123456789012:function:nope",
    "arn:aws:lambda:us-east-1:123456789012:function:nope",
    "arn:aws:lambda:us-east-1:123456789012:function:echo:canary",
])
def test_not_found_for_every_name_form(up, name):
    client = up.client()
    with pytest.raises(client.exceptions.ResourceNotFoundException) as e:
        client.invoke(FunctionName=name, Payload=b"{}")
    err = e.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert err["Error"]["Message"].startswith("Function not found: ")


def test_qualifiers_and_aliases(up):
    client = up.client()
    for kwargs, version in [({}, "$LATEST"), ({"Qualifier": "1"}, "1"), ({"Qualifier": "live"}, "1"), ({"Qualifier": "$LATEST"}, "$LATEST")]:
        r, _ = invoke(client, "echo", {"action": "noop"}, **kwargs)
        assert r["ExecutedVersion"] == version, kwargs
    r, body = invoke(client, "echo:live", {"action": "echo"})
    assert r["ExecutedVersion"] == "1"
    assert body["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:echo:live"
    # Each version runs in its own execution environments, which know their version.
    assert body["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == "1"
    _, body = invoke(client, "echo", {"action": "echo"})
    assert body["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert body["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:echo"
    r, _ = invoke(client, "arn:aws:lambda:us-east-1:123456789012:function:echo", {"action": "noop"}, Qualifier="live")
    assert r["ExecutedVersion"] == "1"
    r, _ = invoke(client, "123456789012:function:echo:1", {"action": "noop"})
    assert r["ExecutedVersion"] == "1"


def test_payload_limits_and_bad_json(up):
    client = up.client()
    with pytest.raises(client.exceptions.RequestTooLargeException) as e:
        client.invoke(FunctionName="echo", Payload=b'"' + b"x" * (6 * 1024 * 1024) + b'"')
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert "6291456 bytes" in e.value.response["Error"]["Message"]
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(FunctionName="echo", InvocationType="Event", Payload=b'"' + b"x" * (1024 * 1024 + 10) + b'"')
    with pytest.raises(client.exceptions.InvalidRequestContentException) as e:
        client.invoke(FunctionName="echo", Payload=b"{not json")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.value.response["Error"]["Message"].startswith("Could not parse request body into json")


def test_dry_run_and_tail(up):
    client = up.client()
    r = client.invoke(FunctionName="echo", InvocationType="DryRun", Payload=b"{}")
    assert r["StatusCode"] == 204
    r = client.invoke(FunctionName="echo", LogType="Tail", Payload=json.dumps({"action": "log", "message": "hi there"}).encode())
    log = base64.b64decode(r["LogResult"]).decode()
    rid = r["ResponseMetadata"]["RequestId"]
    assert f"START RequestId: {rid} Version: $LATEST" in log
    assert "hi there" in log
    assert f"REPORT RequestId: {rid}" in log


def test_wrong_signature_and_skewed_clock(up):
    client = up.client(secret="wrong-secret")
    with pytest.raises(client.exceptions.ClientError) as e:
        client.invoke(FunctionName="echo", Payload=b"{}")
    err = e.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err["Error"]["Code"] == "InvalidSignatureException"
    assert err["Error"]["Message"].startswith("The request signature we calculated does not match")

    # A request signed ten minutes ago.
    creds = botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY)
    request = botocore.awsrequest.AWSRequest(method="POST", url=f"{up.endpoint}/2015-03-31/functions/echo/invocations", data=b"{}")
    signer = botocore.auth.SigV4Auth(creds, "lambda", REGION)
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)

    class Past(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return past.replace(tzinfo=None)

        @classmethod
        def now(cls, tz=None):
            return past if tz else past.replace(tzinfo=None)

    original = botocore.auth.datetime.datetime
    botocore.auth.datetime.datetime = Past
    try:
        signer.add_auth(request)
    finally:
        botocore.auth.datetime.datetime = original
    prepared = request.prepare()
    req = urllib.request.Request(prepared.url, data=prepared.body, method="POST", headers=dict(prepared.headers))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403
    assert e.value.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert "Signature expired" in json.loads(e.value.read())["message"]

    # No signature at all.
    req = urllib.request.Request(f"{up.endpoint}/2015-03-31/functions/echo/invocations", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403
    assert e.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def aws(up, *args):
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION,
           "AWS_EC2_METADATA_DISABLED": "true", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([str(REPO / ".venv/bin/aws"), "--endpoint-url", up.endpoint, "--output", "json", *args],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else None


def test_management_api_with_the_aws_cli(up, tmp_path):
    functions = aws(up, "lambda", "list-functions")["Functions"]
    assert sorted(f["FunctionName"] for f in functions) == ["broken", "echo", "rust"]
    echo = next(f for f in functions if f["FunctionName"] == "echo")
    assert (echo["Runtime"], echo["Handler"], echo["MemorySize"], echo["Timeout"]) == ("python3.12", "app.handler", 128, 2)
    assert echo["FunctionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:echo"
    got = aws(up, "lambda", "get-function", "--function-name", "echo")
    assert got["Configuration"]["FunctionName"] == "echo"
    conf = aws(up, "lambda", "get-function-configuration", "--function-name", "echo", "--qualifier", "live")
    assert conf["Version"] == "1"
    aliases = aws(up, "lambda", "list-aliases", "--function-name", "echo")["Aliases"]
    assert [(a["Name"], a["FunctionVersion"]) for a in aliases] == [("live", "1")]
    versions = aws(up, "lambda", "list-versions-by-function", "--function-name", "echo")["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]
    out = tmp_path / "out.json"
    result = aws(up, "lambda", "invoke", "--function-name", "echo", "--payload", '{"action":"echo","n":5}', str(out))
    assert result["StatusCode"] == 200
    assert json.loads(out.read_text())["event"]["n"] == 5


def test_lambdock_invoke_and_ps(up):
    from conftest import LAMBDOCK
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([str(LAMBDOCK), "invoke", "echo", "--payload", '{"action":"echo","n":3}', "--log-type", "Tail",
                          "--endpoint", up.endpoint], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["event"]["n"] == 3
    assert "StatusCode: 200" in out.stderr and "START RequestId:" in out.stderr and "REPORT RequestId:" in out.stderr
    out = subprocess.run([str(LAMBDOCK), "invoke", "nope", "--endpoint", up.endpoint], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "ResourceNotFoundException" in out.stderr
    up.client().invoke(FunctionName="echo:live", Payload=b"{}")
    ps = subprocess.run([str(LAMBDOCK), "ps", "--endpoint", up.endpoint], env=env, capture_output=True, text=True, timeout=60)
    assert ps.returncode == 0, ps.stderr
    rows = [l.split() for l in ps.stdout.splitlines()[1:]]
    assert any(r[:2] == ["echo", "$LATEST"] and r[3] == "idle" for r in rows), ps.stdout
    assert any(r[:2] == ["echo", "1"] and r[3] == "idle" for r in rows), ps.stdout
    bad = subprocess.run([str(LAMBDOCK), "ps", "--endpoint", up.endpoint, "--secret-key", "wrong"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "403" in bad.stderr
