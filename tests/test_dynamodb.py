"""DynamoDB conformance: boto3 against the embedded store of `lambdock up`.

Tests taking the `ddb` fixture run twice: against Lambdock and against `moto` server (the
reference from PyPI, started here on a free loopback port), so a behaviour both agree on is not
an accident of one implementation. Where they disagree, AWS's documented behaviour is what
Lambdock follows and the test pins Lambdock only (`lambdock_ddb`); the differences are listed in
README.md ("DynamoDB").
"""

import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, REGION, REPO, SECRET_KEY, Up, free_port, manifest

CONFIG = botocore.config.Config(retries={"max_attempts": 0}, connect_timeout=5, read_timeout=60)


def client(endpoint, key=ACCESS_KEY, secret=SECRET_KEY):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=key, aws_secret_access_key=secret, config=CONFIG)


def start_up(tmp: Path, data_dir: Path, functions=None, *flags):
    return Up(manifest(tmp, functions or {}), data_dir, *flags)


def wait_port(port, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("moto server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("moto server did not start")


@pytest.fixture(scope="module")
def lambdock_endpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddb")
    up = start_up(tmp, tmp / "data")
    yield up.dynamodb
    up.stop()


@pytest.fixture(scope="module")
def moto_endpoint():
    port = free_port()
    proc = subprocess.Popen([str(REPO / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(params=["lambdock", "moto"])
def ddb(request):
    return client(request.getfixturevalue(f"{request.param}_endpoint"))


@pytest.fixture
def lambdock_ddb(lambdock_endpoint):
    return client(lambdock_endpoint)


def name(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create(c, table=None, range_key=True, gsi=False, lsi=False, **extra):
    table = table or name()
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attrs = [{"AttributeName": "pk", "AttributeType": "S"}]
    if range_key:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attrs.append({"AttributeName": "sk", "AttributeType": "N"})
    if gsi:
        attrs.append({"AttributeName": "gk", "AttributeType": "S"})
        extra["GlobalSecondaryIndexes"] = [{
            "IndexName": "by-gk", "KeySchema": [{"AttributeName": "gk", "KeyType": "HASH"},
                                                {"AttributeName": "sk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}]
    if lsi:
        attrs.append({"AttributeName": "lk", "AttributeType": "S"})
        extra["LocalSecondaryIndexes"] = [{
            "IndexName": "by-lk", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                {"AttributeName": "lk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}}]
    extra.setdefault("BillingMode", "PAY_PER_REQUEST")
    c.create_table(TableName=table, KeySchema=keys, AttributeDefinitions=attrs, **extra)
    return table


def error(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


def key(pk, sk=None):
    k = {"pk": {"S": pk}}
    if sk is not None:
        k["sk"] = {"N": str(sk)}
    return k


# --- tables ---------------------------------------------------------------------------------------

def test_table_lifecycle(ddb):
    t = create(ddb, gsi=True, lsi=True)
    desc = ddb.describe_table(TableName=t)["Table"]
    assert desc["TableStatus"] == "ACTIVE"
    assert desc["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                 {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert [i["IndexName"] for i in desc["GlobalSecondaryIndexes"]] == ["by-gk"]
    assert [i["IndexName"] for i in desc["LocalSecondaryIndexes"]] == ["by-lk"]
    assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert t in ddb.list_tables()["TableNames"]

    ddb.update_table(TableName=t, BillingMode="PROVISIONED",
                     ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
    desc = ddb.describe_table(TableName=t)["Table"]
    assert desc["ProvisionedThroughput"]["ReadCapacityUnits"] == 5
    assert desc["BillingModeSummary"]["BillingMode"] == "PROVISIONED"

    # A global index added later answers for items written before it.
    ddb.put_item(TableName=t, Item={**key("a", 1), "v": {"S": "found"}})
    out = ddb.update_table(
        TableName=t, AttributeDefinitions=[{"AttributeName": "v", "AttributeType": "S"}],
        GlobalSecondaryIndexUpdates=[{"Create": {
            "IndexName": "by-v", "KeySchema": [{"AttributeName": "v", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
            "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}}])
    assert "by-v" in [i["IndexName"] for i in out["TableDescription"]["GlobalSecondaryIndexes"]]
    wait = time.time() + 30
    while any(i["IndexStatus"] != "ACTIVE" for i in ddb.describe_table(TableName=t)["Table"]["GlobalSecondaryIndexes"]):
        assert time.time() < wait, "the new index never became ACTIVE"
        time.sleep(0.1)
    found = ddb.query(TableName=t, IndexName="by-v", KeyConditionExpression="v = :v",
                      ExpressionAttributeValues={":v": {"S": "found"}})["Items"]
    assert [i["pk"]["S"] for i in found] == ["a"]
    ddb.update_table(TableName=t, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "by-v"}}])
    indexes = ddb.describe_table(TableName=t)["Table"].get("GlobalSecondaryIndexes", [])
    assert [i["IndexName"] for i in indexes] == ["by-gk"]

    with pytest.raises(ClientError) as e:
        create(ddb, table=t)
    assert error(e)[0] == "ResourceInUseException"

    ddb.delete_table(TableName=t)
    with pytest.raises(ClientError) as e:
        ddb.describe_table(TableName=t)
    assert error(e)[0] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        ddb.delete_table(TableName=t)
    assert error(e)[0] == "ResourceNotFoundException"


def test_provisioned_billing_is_accepted(ddb):
    t = create(ddb, range_key=False, BillingMode="PROVISIONED",
               ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
    desc = ddb.describe_table(TableName=t)["Table"]
    assert desc["ProvisionedThroughput"]["WriteCapacityUnits"] == 1


def test_list_tables_paginates(ddb):
    prefix = name("list")
    tables = sorted(create(ddb, table=f"{prefix}-{i}", range_key=False) for i in range(3))
    seen, start = [], None
    while True:
        kwargs = {"Limit": 2}
        if start:
            kwargs["ExclusiveStartTableName"] = start
        page = ddb.list_tables(**kwargs)
        assert len(page["TableNames"]) <= 2
        seen += page["TableNames"]
        start = page.get("LastEvaluatedTableName")
        if not start:
            break
    assert [s for s in seen if s.startswith(prefix)] == tables


# --- items ----------------------------------------------------------------------------------------

def test_put_get_delete_with_return_values(ddb):
    t = create(ddb)
    item = {**key("a", 1), "s": {"S": "x"}, "n": {"N": "1.5"}, "b": {"B": b"\x00\x01"},
            "ss": {"SS": ["p", "q"]}, "m": {"M": {"in": {"L": [{"BOOL": True}, {"NULL": True}]}}}}
    assert "Attributes" not in ddb.put_item(TableName=t, Item=item)
    old = ddb.put_item(TableName=t, Item={**key("a", 1), "s": {"S": "y"}}, ReturnValues="ALL_OLD")
    assert old["Attributes"] == item
    got = ddb.get_item(TableName=t, Key=key("a", 1), ConsistentRead=True)["Item"]
    assert got == {**key("a", 1), "s": {"S": "y"}}
    assert "Item" not in ddb.get_item(TableName=t, Key=key("missing", 1))
    deleted = ddb.delete_item(TableName=t, Key=key("a", 1), ReturnValues="ALL_OLD")
    assert deleted["Attributes"]["s"] == {"S": "y"}
    assert "Item" not in ddb.get_item(TableName=t, Key=key("a", 1))


def test_projection_expression(ddb):
    t = create(ddb)
    ddb.put_item(TableName=t, Item={**key("a", 1), "name": {"S": "n"}, "other": {"S": "o"},
                                    "m": {"M": {"deep": {"S": "d"}, "x": {"S": "y"}}},
                                    "l": {"L": [{"S": "zero"}, {"S": "one"}]}})
    got = ddb.get_item(TableName=t, Key=key("a", 1), ProjectionExpression="#n, m.deep, l[1]",
                       ExpressionAttributeNames={"#n": "name"})["Item"]
    assert got == {"name": {"S": "n"}, "m": {"M": {"deep": {"S": "d"}}}, "l": {"L": [{"S": "one"}]}}


def test_condition_expressions(ddb):
    t = create(ddb)
    ddb.put_item(TableName=t, Item={**key("a", 1), "n": {"N": "5"}, "s": {"S": "hello"},
                                    "tags": {"SS": ["x", "y"]}})

    def passes(expr, values=None, names=None):
        kwargs = {"ConditionExpression": expr}
        if values:
            kwargs["ExpressionAttributeValues"] = values
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            ddb.update_item(TableName=t, Key=key("a", 1), UpdateExpression="SET touched = :touched",
                            **{**kwargs, "ExpressionAttributeValues": {**(values or {}), ":touched": {"BOOL": True}}})
            return True
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ConditionalCheckFailedException"
            assert e.response["Error"]["Message"] == "The conditional request failed"
            return False

    five = {":v": {"N": "5"}}
    assert passes("n = :v", five) and not passes("n <> :v", five)
    assert passes("n >= :v", five) and not passes("n > :v", five)
    assert passes("n <= :v", five) and not passes("n < :v", five)
    assert passes("n BETWEEN :lo AND :hi", {":lo": {"N": "1"}, ":hi": {"N": "5"}})
    assert passes("n IN (:a, :v)", {":a": {"N": "1"}, **five})
    assert passes("attribute_exists(s) AND attribute_not_exists(nope)")
    assert passes("attribute_type(s, :t)", {":t": {"S": "S"}})
    assert passes("begins_with(s, :p)", {":p": {"S": "he"}})
    assert passes("contains(tags, :x)", {":x": {"S": "x"}})
    assert passes("size(s) = :five", {":five": {"N": "5"}})
    assert passes("NOT (n = :one) OR #s = :x", {":one": {"N": "1"}, ":x": {"S": "no"}}, {"#s": "s"})
    assert not passes("(n = :v) AND (s = :x)", {**five, ":x": {"S": "no"}})


def test_conditional_put_fails_with_the_old_item(ddb):
    t = create(ddb)
    ddb.put_item(TableName=t, Item={**key("a", 1), "v": {"S": "first"}})
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=t, Item={**key("a", 1), "v": {"S": "second"}},
                     ConditionExpression="attribute_not_exists(pk)",
                     ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert error(e) == ("ConditionalCheckFailedException", "The conditional request failed")
    assert e.value.response["Item"]["v"] == {"S": "first"}
    with pytest.raises(ClientError) as e:
        ddb.delete_item(TableName=t, Key=key("a", 1), ConditionExpression="v = :x",
                        ExpressionAttributeValues={":x": {"S": "other"}})
    assert error(e)[0] == "ConditionalCheckFailedException"
    assert ddb.get_item(TableName=t, Key=key("a", 1))["Item"]["v"] == {"S": "first"}


def test_update_expressions(ddb):
    t = create(ddb)
    ddb.put_item(TableName=t, Item={**key("a", 1), "n": {"N": "10"}, "l": {"L": [{"N": "1"}]},
                                    "gone": {"S": "x"}, "set": {"SS": ["a", "b", "c"]}})
    # `doc` must exist before a nested SET: DynamoDB refuses a path through a missing map.
    with pytest.raises(ClientError) as e:
        ddb.update_item(TableName=t, Key=key("a", 1), UpdateExpression="SET #d.#e = :e",
                        ExpressionAttributeNames={"#d": "doc", "#e": "e"},
                        ExpressionAttributeValues={":e": {"S": "v"}})
    assert error(e) == ("ValidationException",
                        "The document path provided in the update expression is invalid for update")
    out = ddb.update_item(
        TableName=t, Key=key("a", 1),
        UpdateExpression="SET n = n + :two, l = list_append(l, :more), c = if_not_exists(c, :zero), "
                         "doc = :doc REMOVE gone ADD cnt :one, #set :sadd",
        ExpressionAttributeNames={"#set": "set"},
        ExpressionAttributeValues={":two": {"N": "2"}, ":more": {"L": [{"N": "2"}]}, ":zero": {"N": "0"},
                                   ":doc": {"M": {"e": {"S": "v"}}}, ":one": {"N": "1"},
                                   ":sadd": {"SS": ["d"]}},
        ReturnValues="ALL_NEW",
    )["Attributes"]
    assert sorted(out["set"]["SS"]) == ["a", "b", "c", "d"]
    out = ddb.update_item(TableName=t, Key=key("a", 1), UpdateExpression="DELETE #set :sdel",
                          ExpressionAttributeNames={"#set": "set"},
                          ExpressionAttributeValues={":sdel": {"SS": ["a"]}}, ReturnValues="ALL_NEW")["Attributes"]
    assert out["n"] == {"N": "12"}
    assert out["l"] == {"L": [{"N": "1"}, {"N": "2"}]}
    assert out["c"] == {"N": "0"}
    assert out["cnt"] == {"N": "1"}
    assert sorted(out["set"]["SS"]) == ["b", "c", "d"]
    assert "gone" not in out and out["doc"] == {"M": {"e": {"S": "v"}}}

    updated_new = ddb.update_item(TableName=t, Key=key("a", 1), UpdateExpression="SET n = :v",
                                  ExpressionAttributeValues={":v": {"N": "1"}}, ReturnValues="UPDATED_NEW")
    assert updated_new["Attributes"] == {"n": {"N": "1"}}
    updated_old = ddb.update_item(TableName=t, Key=key("a", 1), UpdateExpression="SET n = :v",
                                  ExpressionAttributeValues={":v": {"N": "2"}}, ReturnValues="UPDATED_OLD")
    assert updated_old["Attributes"] == {"n": {"N": "1"}}
    all_old = ddb.update_item(TableName=t, Key=key("a", 1), UpdateExpression="REMOVE n",
                              ReturnValues="ALL_OLD")
    assert all_old["Attributes"]["n"] == {"N": "2"}
    for expr in ["ADD #a :s DELETE #a :s", "SET #a = :s REMOVE #a"]:
        with pytest.raises(ClientError) as e:
            ddb.update_item(TableName=t, Key=key("a", 1), UpdateExpression=expr,
                            ExpressionAttributeNames={"#a": "set"}, ExpressionAttributeValues={":s": {"SS": ["b"]}})
        code, message = error(e)
        assert code == "ValidationException"
        assert ("Invalid UpdateExpression: Two document paths overlap with each other; "
                "must remove or rewrite one of these paths") in message
    # UpdateItem on a missing item creates it (upsert).
    ddb.update_item(TableName=t, Key=key("new", 1), UpdateExpression="ADD cnt :one",
                    ExpressionAttributeValues={":one": {"N": "1"}})
    assert ddb.get_item(TableName=t, Key=key("new", 1))["Item"]["cnt"] == {"N": "1"}


# --- query and scan -------------------------------------------------------------------------------

def fill(c, t, n=10, pk="p"):
    for i in range(n):
        c.put_item(TableName=t, Item={**key(pk, i), "gk": {"S": "even" if i % 2 == 0 else "odd"},
                                      "lk": {"S": f"l{9 - i}"}, "v": {"N": str(i)}})


def query_sks(c, t, expr, values, **kwargs):
    out = c.query(TableName=t, KeyConditionExpression=expr, ExpressionAttributeValues=values, **kwargs)
    return [int(i["sk"]["N"]) for i in out["Items"]]


def test_query_key_conditions(ddb):
    t = create(ddb)
    fill(ddb, t)
    p = {":p": {"S": "p"}}
    assert query_sks(ddb, t, "pk = :p", p) == list(range(10))
    assert query_sks(ddb, t, "pk = :p AND sk = :s", {**p, ":s": {"N": "3"}}) == [3]
    assert query_sks(ddb, t, "pk = :p AND sk < :s", {**p, ":s": {"N": "3"}}) == [0, 1, 2]
    assert query_sks(ddb, t, "pk = :p AND sk <= :s", {**p, ":s": {"N": "3"}}) == [0, 1, 2, 3]
    assert query_sks(ddb, t, "pk = :p AND sk > :s", {**p, ":s": {"N": "7"}}) == [8, 9]
    assert query_sks(ddb, t, "pk = :p AND sk >= :s", {**p, ":s": {"N": "7"}}) == [7, 8, 9]
    assert query_sks(ddb, t, "pk = :p AND sk BETWEEN :a AND :b",
                     {**p, ":a": {"N": "2"}, ":b": {"N": "4"}}) == [2, 3, 4]
    assert query_sks(ddb, t, "#k = :p", p, ExpressionAttributeNames={"#k": "pk"},
                     ScanIndexForward=False) == list(range(9, -1, -1))
    out = ddb.query(TableName=t, KeyConditionExpression="pk = :p", FilterExpression="v > :five",
                    ExpressionAttributeValues={**p, ":five": {"N": "5"}})
    assert out["Count"] == 4 and out["ScannedCount"] == 10


def test_query_begins_with_on_a_string_sort_key(ddb):
    t = name()
    ddb.create_table(TableName=t, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"}])
    for sk in ["order#1", "order#2", "user#1"]:
        ddb.put_item(TableName=t, Item={"pk": {"S": "p"}, "sk": {"S": sk}})
    out = ddb.query(TableName=t, KeyConditionExpression="pk = :p AND begins_with(sk, :o)",
                    ExpressionAttributeValues={":p": {"S": "p"}, ":o": {"S": "order#"}})
    assert [i["sk"]["S"] for i in out["Items"]] == ["order#1", "order#2"]


def test_query_pagination_with_limit(ddb):
    t = create(ddb)
    fill(ddb, t)
    seen, start, pages = [], None, 0
    while True:
        kwargs = {"Limit": 3}
        if start:
            kwargs["ExclusiveStartKey"] = start
        out = ddb.query(TableName=t, KeyConditionExpression="pk = :p",
                        ExpressionAttributeValues={":p": {"S": "p"}}, **kwargs)
        pages += 1
        seen += [int(i["sk"]["N"]) for i in out["Items"]]
        start = out.get("LastEvaluatedKey")
        if not start:
            break
        assert start == key("p", seen[-1])
    assert seen == list(range(10)) and pages >= 4


def test_index_queries(ddb):
    t = create(ddb, gsi=True, lsi=True)
    fill(ddb, t)
    out = ddb.query(TableName=t, IndexName="by-gk", KeyConditionExpression="gk = :g",
                    ExpressionAttributeValues={":g": {"S": "odd"}})
    assert [int(i["sk"]["N"]) for i in out["Items"]] == [1, 3, 5, 7, 9]
    seen, start = [], None
    while True:
        kwargs = {"ExclusiveStartKey": start} if start else {}
        out = ddb.query(TableName=t, IndexName="by-gk", KeyConditionExpression="gk = :g", Limit=2,
                        ExpressionAttributeValues={":g": {"S": "even"}}, **kwargs)
        seen += [int(i["sk"]["N"]) for i in out["Items"]]
        start = out.get("LastEvaluatedKey")
        if not start:
            break
        # An index's LastEvaluatedKey holds the table's key and the index's.
        assert set(start) == {"pk", "sk", "gk"}
    assert seen == [0, 2, 4, 6, 8]
    out = ddb.query(TableName=t, IndexName="by-lk", KeyConditionExpression="pk = :p AND lk > :l",
                    ExpressionAttributeValues={":p": {"S": "p"}, ":l": {"S": "l6"}})
    assert [i["lk"]["S"] for i in out["Items"]] == ["l7", "l8", "l9"]
    # KEYS_ONLY: the table's and the index's keys, nothing else.
    assert set(out["Items"][0]) == {"pk", "sk", "lk"}


def test_scan_filters_pagination_and_segments(ddb):
    t = create(ddb)
    for pk in "abcdef":
        fill(ddb, t, n=3, pk=pk)
    out = ddb.scan(TableName=t, FilterExpression="v = :one", ExpressionAttributeValues={":one": {"N": "1"}})
    assert out["Count"] == 6 and out["ScannedCount"] == 18

    seen, start = [], None
    while True:
        kwargs = {"Limit": 5}
        if start:
            kwargs["ExclusiveStartKey"] = start
        out = ddb.scan(TableName=t, **kwargs)
        assert out["Count"] <= 5
        seen += [(i["pk"]["S"], i["sk"]["N"]) for i in out["Items"]]
        start = out.get("LastEvaluatedKey")
        if not start:
            break
    assert len(seen) == 18 and len(set(seen)) == 18

    segments = []
    for s in range(3):
        out = ddb.scan(TableName=t, Segment=s, TotalSegments=3)
        segments.append({(i["pk"]["S"], i["sk"]["N"]) for i in out["Items"]})
    assert set().union(*segments) == set(seen)
    assert sum(len(s) for s in segments) == 18


def test_one_megabyte_pages(ddb):
    t = create(ddb)
    blob = "x" * (100 * 1024)
    for i in range(25):
        ddb.put_item(TableName=t, Item={**key("p", i), "blob": {"S": blob}})
    first = ddb.query(TableName=t, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}})
    assert 0 < first["Count"] < 25 and "LastEvaluatedKey" in first
    total, start = 0, None
    while True:
        kwargs = {"ExclusiveStartKey": start} if start else {}
        out = ddb.scan(TableName=t, **kwargs)
        assert out["Count"] <= 11
        total += out["Count"]
        start = out.get("LastEvaluatedKey")
        if not start:
            break
    assert total == 25


# --- batches and transactions ---------------------------------------------------------------------

def test_batch_write_and_get(ddb):
    t = create(ddb)
    puts = [{"PutRequest": {"Item": {**key("b", i), "v": {"N": str(i)}}}} for i in range(25)]
    assert ddb.batch_write_item(RequestItems={t: puts})["UnprocessedItems"] == {}
    keys = [key("b", i) for i in range(0, 25, 5)] + [key("missing", 1)]
    out = ddb.batch_get_item(RequestItems={t: {"Keys": keys, "ProjectionExpression": "sk"}})
    assert sorted(int(i["sk"]["N"]) for i in out["Responses"][t]) == [0, 5, 10, 15, 20]
    assert out["UnprocessedKeys"] == {}
    ddb.batch_write_item(RequestItems={t: [{"DeleteRequest": {"Key": key("b", i)}} for i in range(10)]})
    assert ddb.scan(TableName=t, Select="COUNT")["Count"] == 15


def test_batch_write_takes_at_most_25_requests(lambdock_ddb):
    """Moto accepts more; DynamoDB refuses a batch over 25 requests."""
    t = create(lambdock_ddb)
    too_many = [{"PutRequest": {"Item": key("c", i)}} for i in range(26)]
    with pytest.raises(ClientError) as e:
        lambdock_ddb.batch_write_item(RequestItems={t: too_many})
    assert error(e)[0] == "ValidationException"
    assert "25" in error(e)[1]


def test_transactions(ddb):
    t = create(ddb)
    ddb.put_item(TableName=t, Item={**key("acct", 1), "balance": {"N": "100"}})
    ddb.put_item(TableName=t, Item={**key("acct", 2), "balance": {"N": "0"}})
    ddb.put_item(TableName=t, Item={**key("old", 1)})
    ddb.transact_write_items(TransactItems=[
        {"Update": {"TableName": t, "Key": key("acct", 1), "UpdateExpression": "SET balance = balance - :x",
                    "ConditionExpression": "balance >= :x", "ExpressionAttributeValues": {":x": {"N": "30"}}}},
        {"Update": {"TableName": t, "Key": key("acct", 2), "UpdateExpression": "SET balance = balance + :x",
                    "ExpressionAttributeValues": {":x": {"N": "30"}}}},
        {"Put": {"TableName": t, "Item": {**key("log", 1), "amount": {"N": "30"}}}},
        {"Delete": {"TableName": t, "Key": key("old", 1)}},
    ])
    got = ddb.transact_get_items(TransactItems=[{"Get": {"TableName": t, "Key": key("acct", i)}} for i in (1, 2)])
    assert [r["Item"]["balance"]["N"] for r in got["Responses"]] == ["70", "30"]
    assert "Item" not in ddb.get_item(TableName=t, Key=key("old", 1))

    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": t, "Item": {**key("log", 2)}}},
            {"ConditionCheck": {"TableName": t, "Key": key("acct", 1), "ConditionExpression": "balance > :big",
                                "ExpressionAttributeValues": {":big": {"N": "1000"}}}},
        ])
    code, message = error(e)
    assert code == "TransactionCanceledException"
    assert message == ("Transaction cancelled, please refer cancellation reasons for specific reasons "
                       "[None, ConditionalCheckFailed]")
    reasons = e.value.response["CancellationReasons"]
    assert reasons[0]["Code"] == "None"
    assert reasons[1] == {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
    # Nothing of a cancelled transaction is applied.
    assert "Item" not in ddb.get_item(TableName=t, Key=key("log", 2))


def test_time_to_live_settings(ddb):
    t = create(ddb)
    assert ddb.describe_time_to_live(TableName=t)["TimeToLiveDescription"]["TimeToLiveStatus"] == "DISABLED"
    ddb.update_time_to_live(TableName=t, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    desc = ddb.describe_time_to_live(TableName=t)["TimeToLiveDescription"]
    assert desc == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}


def test_expired_items_are_deleted(tmp_path):
    up = start_up(tmp_path, tmp_path / "data", None, "--dynamodb-ttl-sweep", "0.2")
    try:
        c = client(up.dynamodb)
        t = create(c, range_key=False)
        now = int(time.time())
        c.put_item(TableName=t, Item={"pk": {"S": "expired"}, "exp": {"N": str(now - 60)}})
        c.put_item(TableName=t, Item={"pk": {"S": "alive"}, "exp": {"N": str(now + 3600)}})
        c.put_item(TableName=t, Item={"pk": {"S": "no-ttl"}})
        c.update_time_to_live(TableName=t, TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
        deadline = time.time() + 30
        while "Item" in c.get_item(TableName=t, Key={"pk": {"S": "expired"}}):
            assert time.time() < deadline, "the expired item was never deleted"
            time.sleep(0.1)
        left = sorted(i["pk"]["S"] for i in c.scan(TableName=t)["Items"])
        assert left == ["alive", "no-ttl"]
    finally:
        up.stop()


# --- errors ---------------------------------------------------------------------------------------

def test_resource_not_found(ddb):
    with pytest.raises(ClientError) as e:
        ddb.get_item(TableName="no-such-table", Key=key("a", 1))
    assert error(e)[0] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName="no-such-table", Item=key("a", 1))
    assert error(e)[0] == "ResourceNotFoundException"


def test_item_too_large(ddb):
    t = create(ddb)
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=t, Item={**key("a", 1), "d": {"S": "x" * (400 * 1024)}})
    assert error(e) == ("ValidationException", "Item size has exceeded the maximum allowed size")
    # Just under the limit is fine.
    ddb.put_item(TableName=t, Item={**key("a", 1), "d": {"S": "x" * (390 * 1024)}})


def test_key_errors(lambdock_ddb):
    """Moto says only "Validation Exception" here; these are DynamoDB's messages."""
    ddb = lambdock_ddb
    t = create(ddb)
    with pytest.raises(ClientError) as e:
        ddb.get_item(TableName=t, Key=key("a"))
    assert error(e) == ("ValidationException", "The provided key element does not match the schema")
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=t, Item=key("a"))
    assert error(e) == ("ValidationException",
                        "One or more parameter values were invalid: Missing the key sk in the item")


def test_expression_placeholder_errors(ddb):
    t = create(ddb)
    ddb.put_item(TableName=t, Item={**key("a", 1), "v": {"S": "x"}})
    with pytest.raises(ClientError) as e:
        ddb.update_item(TableName=t, Key=key("a", 1), UpdateExpression="SET v = :v",
                        ExpressionAttributeValues={":v": {"S": "x"}, ":unused": {"S": "y"}})
    code, message = error(e)
    assert code == "ValidationException"
    assert message.endswith("Value provided in ExpressionAttributeValues unused in expressions: keys: {:unused}")
    with pytest.raises(ClientError) as e:
        ddb.get_item(TableName=t, Key=key("a", 1), ProjectionExpression="v",
                     ExpressionAttributeNames={"#u": "u"})
    assert error(e) == ("ValidationException",
                        "Value provided in ExpressionAttributeNames unused in expressions: keys: {#u}")
    with pytest.raises(ClientError) as e:
        ddb.update_item(TableName=t, Key=key("a", 1), UpdateExpression="SET v = :missing")
    assert error(e) == ("ValidationException",
                        "Invalid UpdateExpression: An expression attribute value used in expression is not "
                        "defined; attribute value: :missing")


def test_other_validation_messages(ddb):
    t = create(ddb)
    with pytest.raises(ClientError) as e:
        ddb.update_item(TableName=t, Key=key("a", 1), UpdateExpression="SET pk = :v",
                        ExpressionAttributeValues={":v": {"S": "x"}})
    assert error(e) == ("ValidationException", "One or more parameter values were invalid: Cannot update "
                                               "attribute pk. This attribute is part of the key")
    with pytest.raises(ClientError) as e:
        ddb.scan(TableName=t, Segment=0)
    assert error(e) == ("ValidationException", "The TotalSegments parameter is required but was not present "
                                               "in the request when Segment parameter is present")
    with pytest.raises(ClientError) as e:
        ddb.query(TableName=t, KeyConditionExpression="sk = :s", ExpressionAttributeValues={":s": {"N": "1"}})
    assert error(e) == ("ValidationException", "Query condition missed key schema element: pk")
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": t, "Item": key("a", 1)}},
                                                {"Delete": {"TableName": t, "Key": key("a", 1)}}])
    assert error(e) == ("ValidationException", "Transaction request cannot include multiple operations on one item")
    with pytest.raises(ClientError) as e:
        ddb.batch_get_item(RequestItems={t: {"Keys": [key("a", 1), key("a", 1)]}})
    assert error(e) == ("ValidationException", "Provided list of item keys contains duplicates")


def test_an_undefined_attribute_name_is_refused(lambdock_ddb):
    """Moto fails with an HTTP 500 here."""
    t = create(lambdock_ddb)
    with pytest.raises(ClientError) as e:
        lambdock_ddb.update_item(TableName=t, Key=key("a", 1), UpdateExpression="SET #m = :v",
                                 ExpressionAttributeValues={":v": {"S": "x"}})
    assert error(e) == ("ValidationException", "Invalid UpdateExpression: An expression attribute name used in "
                                               "the document path is not defined; attribute name: #m")
    assert "Item" not in lambdock_ddb.get_item(TableName=t, Key=key("a", 1))


def test_validation_errors_of_expressions(lambdock_ddb):
    """Moto accepts these (it parses expressions loosely); DynamoDB and Lambdock refuse them."""
    t = create(lambdock_ddb)
    with pytest.raises(ClientError) as e:
        lambdock_ddb.query(TableName=t, KeyConditionExpression="pk = :p AND",
                           ExpressionAttributeValues={":p": {"S": "a"}})
    assert error(e)[0] == "ValidationException"
    with pytest.raises(ClientError) as e:
        lambdock_ddb.get_item(TableName=t, Key={"pk": {"S": "a"}, "sk": {"S": "not-a-number"}})
    assert error(e)[0] == "ValidationException"
    assert "does not match the schema" in error(e)[1]


# --- authentication -------------------------------------------------------------------------------

def test_signatures_are_verified(lambdock_endpoint):
    with pytest.raises(ClientError) as e:
        client(lambdock_endpoint, secret="wrong").list_tables()
    assert error(e)[0] == "InvalidSignatureException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as e:
        client(lambdock_endpoint, key="unknown").list_tables()
    assert error(e) == ("UnrecognizedClientException", "The security token included in the request is invalid.")
    import json
    import urllib.request
    req = urllib.request.Request(lambdock_endpoint, data=b"{}", method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.ListTables"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    body = json.loads(e.value.read())
    assert e.value.code == 400
    assert body == {"__type": "com.amazon.coral.service#MissingAuthenticationTokenException",
                    "message": "Request is missing Authentication Token"}


# --- durability -----------------------------------------------------------------------------------

def test_acknowledged_writes_survive_kill_9(tmp_path):
    up = start_up(tmp_path, tmp_path / "data")
    c = client(up.dynamodb)
    t = create(c)
    acked, counter_acks, stop = [], [0], threading.Event()

    def writer(worker):
        w = client(up.dynamodb)
        i = 0
        while not stop.is_set():
            try:
                w.put_item(TableName=t, Item={**key(f"w{worker}", i), "v": {"S": "x" * 100}})
                acked.append((worker, i))
                if worker == 0:
                    w.update_item(TableName=t, Key=key("counter", 0), UpdateExpression="ADD n :one",
                                  ExpressionAttributeValues={":one": {"N": "1"}})
                    counter_acks[0] += 1
            except Exception:
                return
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    deadline = time.time() + 60
    while len(acked) < 300 and time.time() < deadline:
        time.sleep(0.01)
    up.kill9()
    stop.set()
    for th in threads:
        th.join(30)
    assert len(acked) >= 300

    up2 = start_up(tmp_path, tmp_path / "data")
    try:
        c2 = client(up2.dynamodb)
        stored = set()
        start = None
        while True:
            kwargs = {"ExclusiveStartKey": start} if start else {}
            out = c2.scan(TableName=t, **kwargs)
            stored |= {(i["pk"]["S"], int(i["sk"]["N"])) for i in out["Items"]}
            start = out.get("LastEvaluatedKey")
            if not start:
                break
        missing = [(w, i) for (w, i) in acked if (f"w{w}", i) not in stored]
        assert missing == []
        # ADD is replayed exactly once per logged request: at least every acknowledged increment,
        # at most one more (written and synced, then killed before the response went out).
        counter = c2.get_item(TableName=t, Key=key("counter", 0)).get("Item")
        n = int(counter["n"]["N"]) if counter else 0
        assert counter_acks[0] <= n <= counter_acks[0] + 1
    finally:
        up2.stop()


def test_tables_survive_restarts_and_snapshots(tmp_path):
    up = start_up(tmp_path, tmp_path / "data")
    c = client(up.dynamodb)
    t = create(c, gsi=True)
    c.update_time_to_live(TableName=t, TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
    fill(c, t, n=5)
    up.stop()  # graceful: writes a snapshot
    assert any(p.name.startswith("snapshot-") for p in (tmp_path / "data" / "dynamodb").iterdir())
    up = start_up(tmp_path, tmp_path / "data")
    c = client(up.dynamodb)
    c.delete_item(TableName=t, Key=key("p", 0))
    up.kill9()  # the delete is only in the log now
    up = start_up(tmp_path, tmp_path / "data")
    try:
        c = client(up.dynamodb)
        out = c.query(TableName=t, IndexName="by-gk", KeyConditionExpression="gk = :g",
                      ExpressionAttributeValues={":g": {"S": "even"}})
        assert [int(i["sk"]["N"]) for i in out["Items"]] == [2, 4]
        assert c.describe_time_to_live(TableName=t)["TimeToLiveDescription"]["AttributeName"] == "exp"
    finally:
        up.stop()


# --- functions ------------------------------------------------------------------------------------

FUNCTION = '''
import boto3

def handler(event, context):
    ddb = boto3.client("dynamodb")
    ddb.put_item(TableName=event["table"], Item={"pk": {"S": "from-function"}, "v": {"S": event["value"]}})
    got = ddb.get_item(TableName=event["table"], Key={"pk": {"S": "from-function"}}, ConsistentRead=True)
    return got["Item"]["v"]["S"]
'''


def function_using_dynamodb(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(FUNCTION)
    return {"ddb-user": {"runtime": "python3.12", "handler": "app.handler", "code": {"dir": str(code)},
                         "timeout": 60}}


def test_a_function_reaches_dynamodb_without_an_endpoint_in_its_code(tmp_path):
    up = start_up(tmp_path, tmp_path / "data", functions=function_using_dynamodb(tmp_path))
    try:
        c = client(up.dynamodb)
        t = create(c, range_key=False)
        import json
        out = up.client().invoke(FunctionName="ddb-user", Payload=json.dumps({"table": t, "value": "hello"}))
        assert "FunctionError" not in out, out["Payload"].read()
        assert json.loads(out["Payload"].read()) == "hello"
        assert c.get_item(TableName=t, Key={"pk": {"S": "from-function"}})["Item"]["v"] == {"S": "hello"}
    finally:
        up.stop()


def test_an_external_endpoint_replaces_the_embedded_store(tmp_path, moto_endpoint):
    up = Up(manifest(tmp_path, function_using_dynamodb(tmp_path)), tmp_path / "data",
            "--dynamodb-endpoint", moto_endpoint)
    try:
        assert f"DynamoDB endpoint (external): {moto_endpoint}" in "".join(up.output)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", up.dynamodb_port), timeout=1).close()
        external = client(moto_endpoint)
        t = create(external, range_key=False)
        import json
        out = up.client().invoke(FunctionName="ddb-user", Payload=json.dumps({"table": t, "value": "external"}))
        assert "FunctionError" not in out, out["Payload"].read()
        assert external.get_item(TableName=t, Key={"pk": {"S": "from-function"}})["Item"]["v"] == {"S": "external"}
    finally:
        up.stop()
