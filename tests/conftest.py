"""Whole-system harness: starts the real `lambdock up` and talks to it with boto3 and the AWS CLI."""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import boto3
import botocore.config
import pytest

REPO = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
LAMBDOCK = TARGET / "debug" / "lambdock"
FIXTURE_RUST = TARGET / "debug" / "lambdock-fixture-rust"
ACCESS_KEY, SECRET_KEY, REGION = "lambdock", "lambdock-secret", "us-east-1"

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manifest(tmp: Path, functions: dict) -> Path:
    path = tmp / "manifest.json"
    path.write_text(json.dumps({"schema_version": 1, "functions": functions}))
    return path


def python_function(handler="app.handler", **extra):
    return {"runtime": "python3.12", "handler": handler, "code": {"dir": str(REPO / "fixtures/python")}, **extra}


def rust_function(tmp: Path, **extra):
    code = tmp / "rust-code"
    code.mkdir(exist_ok=True)
    shutil.copy(FIXTURE_RUST, code / "bootstrap")
    return {"runtime": "provided.al2023", "handler": "bootstrap", "code": {"dir": str(code)}, **extra}


class Up:
    """A running `lambdock up`."""

    def __init__(self, manifest_path: Path, data_dir: Path, *flags: str):
        self.port, self.s3_port, self.api_port = free_port(), free_port(), free_port()
        self.manifest_path, self.data_dir, self.flags = manifest_path, data_dir, flags
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.s3_endpoint = f"http://127.0.0.1:{self.s3_port}"
        self.output = []
        self.start()

    def start(self):
        # A port picked free can be taken by another process first; `up` then exits at start
        # and a new port is tried.
        for attempt in range(5):
            if self._try_start():
                return
            self.port, self.s3_port, self.api_port = free_port(), free_port(), free_port()
            self.endpoint = f"http://127.0.0.1:{self.port}"
            self.s3_endpoint = f"http://127.0.0.1:{self.s3_port}"
        raise RuntimeError("lambdock up did not start:\n" + "".join(self.output))

    def _try_start(self):
        # The embedded DynamoDB gets a free port too, so that several `up`s can run at once.
        self.dynamodb_port = free_port()
        self.dynamodb = f"http://127.0.0.1:{self.dynamodb_port}"
        self.proc = subprocess.Popen(
            [str(LAMBDOCK), "up", "--manifest", str(self.manifest_path), "--aws-port", str(self.port),
             "--data-dir", str(self.data_dir), "--python", str(REPO / ".venv/bin/python"),
             "--s3-port", str(self.s3_port), "--dynamodb-port", str(self.dynamodb_port),
             "--api-port", str(self.api_port), *self.flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        ready = threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.output.append(line)
                if line.strip() == "ready":
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.time() + 60
        while not ready.wait(0.05):
            if self.proc.poll() is not None:
                return False
            if time.time() > deadline:
                self.stop()
                raise RuntimeError("lambdock up did not become ready:\n" + "".join(self.output))
        return True

    def client(self, secret=SECRET_KEY, retries=0, read_timeout=60):
        return boto3.client(
            "lambda", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=secret,
            config=botocore.config.Config(retries={"max_attempts": retries, "mode": "standard"},
                                          read_timeout=read_timeout, connect_timeout=5),
        )

    def s3(self, secret=SECRET_KEY):
        return boto3.client(
            "s3", endpoint_url=self.s3_endpoint, region_name=REGION,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=secret,
            config=botocore.config.Config(retries={"max_attempts": 0, "mode": "standard"},
                                          s3={"addressing_style": "path"}),
        )

    def metrics(self) -> str:
        import urllib.request
        with urllib.request.urlopen(self.endpoint + "/metrics", timeout=10) as r:
            return r.read().decode()

    def metric(self, name: str, function: str) -> float:
        for line in self.metrics().splitlines():
            if line.startswith(f'{name}{{function="{function}"}}'):
                return float(line.split()[-1])
        return 0.0

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def up_factory(tmp_path):
    started = []

    def make(functions, *flags, data_dir=None):
        path = manifest(tmp_path, functions)
        up = Up(path, data_dir or tmp_path / "data", *flags)
        started.append(up)
        return up

    yield make
    for up in started:
        up.stop()
