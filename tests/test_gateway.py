"""`lambdock gateway` over a separate `lambdock agent`, as a production node runs them: the
functions get the external S3 and DynamoDB the gateway is told about."""

import json
import signal
import subprocess
import threading
import time

import boto3
import botocore.config

from conftest import ACCESS_KEY, LAMBDOCK, REGION, REPO, SECRET_KEY, free_port, manifest

HANDLER = """
import os

def handler(event, context):
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL")}
"""


def start(args, ready_marker, output):
    proc = subprocess.Popen([str(LAMBDOCK), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready = threading.Event()

    def pump():
        for line in proc.stdout:
            output.append(line)
            if ready_marker in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.time() + 60
    while not ready.wait(0.05):
        assert proc.poll() is None and time.time() < deadline, "".join(output)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_gateway_over_an_agent_gives_functions_the_external_stores(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(HANDLER)
    path = manifest(tmp_path, {"env": {"runtime": "python3.12", "handler": "app.handler", "code": {"dir": str(code)}}})
    agent_port, aws_port = free_port(), free_port()
    output = []
    agent = start(["agent", "--listen", f"127.0.0.1:{agent_port}", "--metrics-listen", f"127.0.0.1:{free_port()}",
                   "--data-dir", str(tmp_path / "agent"), "--python", str(REPO / ".venv/bin/python")],
                  "agent ready", output)
    try:
        gateway = start(["gateway", "--agent", f"http://127.0.0.1:{agent_port}", "--manifest", str(path),
                         "--aws-port", str(aws_port), "--api-port", str(free_port()),
                         "--data-dir", str(tmp_path / "gateway"),
                         "--s3-endpoint", "http://s3.internal:9000",
                         "--dynamodb-endpoint", "http://alternator.internal:8000"],
                        "ready", output)
        try:
            banner = "".join(output)
            assert "S3 endpoint (external): http://s3.internal:9000" in banner
            assert "DynamoDB endpoint (external): http://alternator.internal:8000" in banner
            client = boto3.client(
                "lambda", endpoint_url=f"http://127.0.0.1:{aws_port}", region_name=REGION,
                aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                config=botocore.config.Config(retries={"max_attempts": 0}, read_timeout=60))
            out = client.invoke(FunctionName="env")
            payload = json.load(out["Payload"])
            assert out["StatusCode"] == 200 and "FunctionError" not in out, payload
            assert payload == {
                "AWS_ENDPOINT_URL_S3": "http://s3.internal:9000",
                "AWS_ENDPOINT_URL_DYNAMODB": "http://alternator.internal:8000",
                "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{aws_port}",
            }
        finally:
            stop(gateway)
    finally:
        stop(agent)
