"""Schedules against `lambdock up`: a rate(1 minute) schedule (the minute shortened with
--schedule-minute-seconds) fires EventBridge's scheduled event, an Input schedule delivers its
input, a disabled one never fires, `lambdock schedules` shows them, and a hot reload that
disables a schedule stops it."""

import json
import re
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import ACCESS_KEY, LAMBDOCK, REGION, SECRET_KEY, Up, python_function

ACCOUNT = "123456789012"


@pytest.fixture
def record_dir():
    # Not under /tmp (isolated sandboxes get a private /tmp) nor in the checkout (which may be).
    directory = Path("/var/tmp/lambdock-test") / uuid.uuid4().hex
    directory.mkdir(parents=True)
    yield directory
    for f in directory.iterdir():
        f.unlink()
    directory.rmdir()


def recorder(path: Path, **extra):
    f = python_function("record_event.handler", environment={"RECORD_PATH": str(path)}, **extra)
    path.touch()
    return f


def records(path: Path):
    return [json.loads(l) for l in path.read_text().splitlines() if l]


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def schedules_cli(up):
    out = subprocess.run(
        [str(LAMBDOCK), "schedules", "--endpoint", up.endpoint, "--access-key", ACCESS_KEY,
         "--secret-key", SECRET_KEY, "--region", REGION],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    rows = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        rows[cols[0]] = line
    return out, rows


def write_manifest(path: Path, functions, schedules):
    path.write_text(json.dumps({"schema_version": 1, "functions": functions, "schedules": schedules}))


@pytest.fixture
def scheduled(tmp_path, record_dir):
    files = {n: record_dir / f"{n}.jsonl" for n in ("tick", "inputs", "off", "v2")}
    functions = {n: recorder(p) for n, p in files.items()}
    schedules = {
        "every-minute": {"function": "tick", "expression": "rate(1 minute)"},
        "with-input": {"function": "inputs", "expression": "rate(1 minute)",
                       "input": '{"job": "nightly", "n": 3}'},
        "disabled": {"function": "off", "expression": "rate(1 minute)", "enabled": False},
        "far-future": {"function": "off", "expression": "cron(0 10 1 JAN ? 2199)",
                       "timezone": "Europe/Paris", "scheduler": True},
        "broken": {"function": "off", "expression": "rate(1 minutes)"},
        "v2-minute": {"function": "v2", "expression": "rate(1 minute)", "scheduler": True},
    }
    manifest = tmp_path / "manifest.json"
    write_manifest(manifest, functions, schedules)
    started = time.time()
    up = Up(manifest, tmp_path / "data", "--schedule-minute-seconds", "1")
    yield up, files, manifest, functions, schedules, started
    up.stop()


def test_rate_schedule_fires_the_scheduled_event(scheduled):
    up, files, _, _, _, started = scheduled
    wait_for(lambda: len(records(files["tick"])) >= 3, what="three fires")
    got = records(files["tick"])
    ids = set()
    for r in got:
        e = r["event"]
        assert list(e) == ["version", "id", "detail-type", "source", "account", "time", "region",
                           "resources", "detail"]
        assert e["version"] == "0"
        assert str(uuid.UUID(e["id"])) == e["id"]
        ids.add(e["id"])
        assert e["detail-type"] == "Scheduled Event"
        assert e["source"] == "aws.events"
        assert e["account"] == ACCOUNT
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["time"]), e["time"]
        fired = datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert started - 1 <= fired.timestamp() <= time.time()
        assert e["region"] == REGION
        assert e["resources"] == [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/every-minute"]
        assert e["detail"] == {}
        assert r["invoked_function_arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:tick"
    assert len(ids) == len(got), "each fire is a new event"
    times = [r["event"]["time"] for r in got]
    assert times == sorted(times)


def test_scheduler_schedule_without_input_sends_the_default_notification(scheduled):
    up, files, *_ = scheduled
    wait_for(lambda: len(records(files["v2"])) >= 1, what="a fire of the ScheduleV2 schedule")
    e = records(files["v2"])[0]["event"]
    assert list(e) == ["version", "id", "detail-type", "source", "account", "time", "region",
                       "resources", "detail"]
    assert (e["detail-type"], e["source"]) == ("Scheduled Event", "aws.scheduler")
    assert e["resources"] == [f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/v2-minute"]
    # EventBridge Scheduler sends detail as a JSON text, not an object.
    assert e["detail"] == "{}"


def test_input_replaces_the_event_and_disabled_never_fires(scheduled):
    up, files, *_ = scheduled
    wait_for(lambda: len(records(files["inputs"])) >= 2, what="two fires with input")
    # The disabled schedule shares the rate: had it been on, it would have fired by now.
    wait_for(lambda: len(records(files["tick"])) >= 2, what="two fires of the enabled twin")
    assert all(r["event"] == {"job": "nightly", "n": 3} for r in records(files["inputs"]))
    assert records(files["off"]) == []


def test_lambdock_schedules_lists_next_and_last_runs(scheduled):
    up, files, *_ = scheduled
    wait_for(lambda: len(records(files["tick"])) >= 1, what="a fire")
    out, rows = schedules_cli(up)
    assert out.splitlines()[0].split()[:5] == ["NAME", "FUNCTION", "EXPRESSION", "TIMEZONE", "ENABLED"]
    assert set(rows) == {"every-minute", "with-input", "disabled", "far-future", "broken", "v2-minute"}
    tick = rows["every-minute"]
    assert "rate(1 minute)" in tick and " UTC " in tick and " true " in tick
    assert re.search(r"queued [0-9a-f-]{36}", tick), tick
    assert " false " in rows["disabled"] and rows["disabled"].split()[-1] == "-"
    # Europe/Paris is UTC+1 in January.
    assert "Europe/Paris" in rows["far-future"] and "2199-01-01T09:00:00Z" in rows["far-future"]
    assert "invalid: Parameter ScheduleExpression is not valid." in rows["broken"]
    fires = int(tick.split()[-3])  # FIRES, then "queued <request id>"
    assert fires >= 1
    metrics = up.metrics()
    assert re.search(r'^lambdock_schedule_fires_total\{schedule="every-minute"\} [1-9]', metrics, re.M), metrics
    assert 'schedule="disabled"' not in metrics


def test_hot_reload_disables_a_schedule(scheduled):
    up, files, manifest, functions, schedules, _ = scheduled
    wait_for(lambda: len(records(files["tick"])) >= 1, what="a fire")
    schedules["every-minute"]["enabled"] = False
    write_manifest(manifest, functions, schedules)
    wait_for(lambda: " false " in schedules_cli(up)[1]["every-minute"], what="the reload")
    # A fire already queued at the reload may still land; after that, none.
    before = len(records(files["inputs"]))
    wait_for(lambda: len(records(files["inputs"])) >= before + 2, what="more fires of the other schedule")
    frozen = len(records(files["tick"]))
    wait_for(lambda: len(records(files["inputs"])) >= before + 4, what="still more fires")
    assert len(records(files["tick"])) == frozen


def test_overlapping_fires_wait_their_turn(tmp_path, record_dir):
    # One worker, each run longer than the (shortened) minute: fires overlap the running one.
    path = record_dir / "slow.jsonl"
    slow = recorder(path, reserved_concurrency=1)
    slow["environment"]["RECORD_SLEEP"] = "2.5"
    manifest = tmp_path / "manifest.json"
    write_manifest(manifest, {"slow": slow},
                   {"often": {"function": "slow", "expression": "rate(1 minute)"}})
    up = Up(manifest, tmp_path / "data", "--schedule-minute-seconds", "1")
    try:
        wait_for(lambda: any("this one waits its turn" in l for l in up.output), what="the overlap log")
        plain = [re.sub(r"\x1b\[[0-9;]*m", "", l) for l in up.output]
        assert any('schedule="often"' in l and 'function="slow"' in l
                   for l in plain if "waits its turn" in l), plain
        # Stop firing, then every fire made so far is delivered: none was skipped.
        write_manifest(manifest, {"slow": slow}, {
            "often": {"function": "slow", "expression": "rate(1 minute)", "enabled": False}})
        wait_for(lambda: " false " in schedules_cli(up)[1]["often"], what="the reload")
        fired = int(schedules_cli(up)[1]["often"].split()[-3])
        assert fired >= 2
        wait_for(lambda: len(records(path)) >= fired, timeout=120, what="every fire delivered")
        ids = [r["event"]["id"] for r in records(path)]
        assert len(set(ids)) == len(ids)
    finally:
        up.stop()
