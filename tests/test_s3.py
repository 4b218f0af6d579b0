"""The embedded S3 of `lambdock up`, with boto3, the AWS CLI and curl as clients: buckets,
objects, listings, ranges, multipart, presigned URLs, lifecycle, CORS, SigV4 errors, and
kill -9 during a stream of PUTs."""

import concurrent.futures
import hashlib
import json
import os
import subprocess
import threading
import time

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import ACCESS_KEY, REGION, REPO, SECRET_KEY

MiB = 1024 * 1024


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def error_of(call, *args, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(*args, **kwargs)
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def aws(up, *args, check=True):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
               AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true")
    r = subprocess.run([str(REPO / ".venv/bin/aws"), "--endpoint-url", up.s3_endpoint, *args],
                       capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def curl(*args):
    r = subprocess.run(["curl", "-s", "-o", "/dev/stdout", "-w", "\n%{http_code}", *args],
                       capture_output=True, timeout=60)
    body, _, status = r.stdout.rpartition(b"\n")
    return int(status), body


@pytest.fixture
def up(up_factory):
    return up_factory({})


@pytest.fixture
def s3(up):
    return up.s3()


def test_buckets(s3):
    s3.create_bucket(Bucket="alpha")
    s3.create_bucket(Bucket="beta")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == ["alpha", "beta"]
    assert s3.head_bucket(Bucket="alpha")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert error_of(s3.create_bucket, Bucket="alpha") == ("BucketAlreadyOwnedByYou", 409)
    assert error_of(s3.head_bucket, Bucket="nope") == ("404", 404)
    assert error_of(s3.create_bucket, Bucket="Bad_Name") == ("InvalidBucketName", 400)
    s3.put_object(Bucket="alpha", Key="k", Body=b"x")
    assert error_of(s3.delete_bucket, Bucket="alpha") == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket="alpha", Key="k")
    s3.delete_bucket(Bucket="alpha")
    assert error_of(s3.delete_bucket, Bucket="alpha") == ("NoSuchBucket", 404)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["beta"]
    assert error_of(s3.put_object, Bucket="alpha", Key="k", Body=b"x") == ("NoSuchBucket", 404)


def test_objects_metadata_etag_and_copy(s3):
    s3.create_bucket(Bucket="objs")
    body = b"hello, lambdock"
    put = s3.put_object(Bucket="objs", Key="dir/a b+c.txt", Body=body, ContentType="text/plain",
                        Metadata={"colour": "blue", "n": "1"}, CacheControl="max-age=60")
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket="objs", Key="dir/a b+c.txt")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain"
    assert got["CacheControl"] == "max-age=60"
    assert got["Metadata"] == {"colour": "blue", "n": "1"}
    assert got["ETag"] == put["ETag"]
    assert got["ContentLength"] == len(body)
    head = s3.head_object(Bucket="objs", Key="dir/a b+c.txt")
    assert head["LastModified"] == got["LastModified"]
    assert head["ContentLength"] == len(body) and head["Metadata"]["colour"] == "blue"
    assert error_of(s3.get_object, Bucket="objs", Key="missing") == ("NoSuchKey", 404)
    assert error_of(s3.head_object, Bucket="objs", Key="missing") == ("404", 404)

    copied = s3.copy_object(Bucket="objs", Key="copy", CopySource={"Bucket": "objs", "Key": "dir/a b+c.txt"})
    assert copied["CopyObjectResult"]["ETag"] == put["ETag"]
    c = s3.get_object(Bucket="objs", Key="copy")
    assert c["Body"].read() == body and c["Metadata"] == {"colour": "blue", "n": "1"}
    s3.copy_object(Bucket="objs", Key="copy", CopySource="objs/copy", MetadataDirective="REPLACE",
                   ContentType="application/json", Metadata={"new": "yes"})
    h = s3.head_object(Bucket="objs", Key="copy")
    assert h["ContentType"] == "application/json" and h["Metadata"] == {"new": "yes"}
    assert error_of(s3.copy_object, Bucket="objs", Key="copy", CopySource="objs/copy") == ("InvalidRequest", 400)
    assert error_of(s3.copy_object, Bucket="objs", Key="x", CopySource="objs/missing") == ("NoSuchKey", 404)

    # Overwrite replaces data and metadata.
    s3.put_object(Bucket="objs", Key="copy", Body=b"v2")
    h = s3.head_object(Bucket="objs", Key="copy")
    assert h["ContentLength"] == 2 and h["Metadata"] == {}

    s3.put_object(Bucket="objs", Key="empty", Body=b"")
    assert s3.get_object(Bucket="objs", Key="empty")["Body"].read() == b""

    s3.delete_object(Bucket="objs", Key="copy")
    s3.delete_object(Bucket="objs", Key="copy")  # deleting a missing key succeeds, as in S3
    r = s3.delete_objects(Bucket="objs", Delete={"Objects": [{"Key": "dir/a b+c.txt"}, {"Key": "empty"},
                                                             {"Key": "never"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["dir/a b+c.txt", "empty", "never"]
    assert s3.list_objects_v2(Bucket="objs")["KeyCount"] == 0


def test_bad_content_md5_is_refused(s3):
    s3.create_bucket(Bucket="md5s")
    wrong = "1B2M2Y8AsgTpgAmY7PhCfg=="  # the MD5 of the empty string
    assert error_of(s3.put_object, Bucket="md5s", Key="k", Body=b"data", ContentMD5=wrong) == ("BadDigest", 400)
    assert "Contents" not in s3.list_objects_v2(Bucket="md5s")


def test_listing_v1_and_v2(s3):
    s3.create_bucket(Bucket="lists")
    keys = ["a/1", "a/2", "a/b/3", "b", "c/1", "c/2", "d", "sp ace/é+%"]
    for k in keys:
        s3.put_object(Bucket="lists", Key=k, Body=k.encode())

    v2 = s3.list_objects_v2(Bucket="lists")
    assert [o["Key"] for o in v2["Contents"]] == keys
    assert v2["KeyCount"] == len(keys) and not v2["IsTruncated"]
    assert v2["Contents"][0]["Size"] == 3 and v2["Contents"][0]["ETag"] == f'"{hashlib.md5(b"a/1").hexdigest()}"'

    d = s3.list_objects_v2(Bucket="lists", Delimiter="/")
    assert [o["Key"] for o in d["Contents"]] == ["b", "d"]
    assert [p["Prefix"] for p in d["CommonPrefixes"]] == ["a/", "c/", "sp ace/"]

    p = s3.list_objects_v2(Bucket="lists", Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in p["Contents"]] == ["a/1", "a/2"]
    assert [c["Prefix"] for c in p["CommonPrefixes"]] == ["a/b/"]

    # Pagination with continuation tokens, delimiter roll-ups counting as one entry.
    seen, token, pages = [], None, 0
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket="lists", Delimiter="/", MaxKeys=2, **kw)
        pages += 1
        seen += [o["Key"] for o in page.get("Contents", [])] + [c["Prefix"] for c in page.get("CommonPrefixes", [])]
        assert page["KeyCount"] <= 2
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert sorted(seen) == ["a/", "b", "c/", "d", "sp ace/"] and pages == 3

    sa = s3.list_objects_v2(Bucket="lists", StartAfter="c/1")
    assert [o["Key"] for o in sa["Contents"]] == ["c/2", "d", "sp ace/é+%"]
    assert error_of(s3.list_objects_v2, Bucket="lists", ContinuationToken="***") == ("InvalidArgument", 400)

    # v1: markers.
    v1 = s3.list_objects(Bucket="lists", MaxKeys=3)
    assert [o["Key"] for o in v1["Contents"]] == ["a/1", "a/2", "a/b/3"] and v1["IsTruncated"]
    rest = s3.list_objects(Bucket="lists", Marker="a/b/3")
    assert [o["Key"] for o in rest["Contents"]] == keys[3:] and not rest["IsTruncated"]
    dv1 = s3.list_objects(Bucket="lists", Delimiter="/", MaxKeys=2)
    assert dv1["NextMarker"] == "b" and dv1["IsTruncated"]
    dv1b = s3.list_objects(Bucket="lists", Delimiter="/", Marker=dv1["NextMarker"])
    assert [c["Prefix"] for c in dv1b["CommonPrefixes"]] == ["c/", "sp ace/"]
    assert [o["Key"] for o in dv1b["Contents"]] == ["d"]
    paginator = s3.get_paginator("list_objects")
    assert [o["Key"] for page in paginator.paginate(Bucket="lists", PaginationConfig={"PageSize": 3})
            for o in page["Contents"]] == keys
    assert error_of(s3.list_objects_v2, Bucket="nope") == ("NoSuchBucket", 404)


def test_ranged_gets(s3, up):
    s3.create_bucket(Bucket="ranges")
    data = bytes(range(256)) * 4
    s3.put_object(Bucket="ranges", Key="r", Body=data)
    r = s3.get_object(Bucket="ranges", Key="r", Range="bytes=10-19")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert r["ContentRange"] == "bytes 10-19/1024" and r["Body"].read() == data[10:20]
    r = s3.get_object(Bucket="ranges", Key="r", Range="bytes=-5")
    assert r["ContentRange"] == "bytes 1019-1023/1024" and r["Body"].read() == data[-5:]
    r = s3.get_object(Bucket="ranges", Key="r", Range="bytes=1000-")
    assert r["Body"].read() == data[1000:]
    r = s3.get_object(Bucket="ranges", Key="r", Range="bytes=1000-5000")
    assert r["ContentRange"] == "bytes 1000-1023/1024"
    assert error_of(s3.get_object, Bucket="ranges", Key="r", Range="bytes=2000-3000") == ("InvalidRange", 416)


def test_multipart_20_mb(s3):
    s3.create_bucket(Bucket="multi")
    data = os.urandom(20 * MiB)
    upload = s3.create_multipart_upload(Bucket="multi", Key="big.bin", ContentType="application/x-big",
                                        Metadata={"kind": "multipart"})
    uid = upload["UploadId"]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="multi")["Uploads"]] == [uid]
    chunks = [data[i:i + 8 * MiB] for i in range(0, len(data), 8 * MiB)]
    parts = []
    for n, chunk in enumerate(chunks, start=1):
        r = s3.upload_part(Bucket="multi", Key="big.bin", UploadId=uid, PartNumber=n, Body=chunk)
        assert r["ETag"] == f'"{hashlib.md5(chunk).hexdigest()}"'
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    listed = s3.list_parts(Bucket="multi", Key="big.bin", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 8 * MiB), (2, 8 * MiB), (3, 4 * MiB)]
    bad = [dict(parts[0]), parts[1], parts[2]]
    bad[0]["ETag"] = '"00000000000000000000000000000000"'
    assert error_of(s3.complete_multipart_upload, Bucket="multi", Key="big.bin", UploadId=uid,
                    MultipartUpload={"Parts": bad}) == ("InvalidPart", 400)
    assert error_of(s3.complete_multipart_upload, Bucket="multi", Key="big.bin", UploadId=uid,
                    MultipartUpload={"Parts": list(reversed(parts))}) == ("InvalidPartOrder", 400)
    done = s3.complete_multipart_upload(Bucket="multi", Key="big.bin", UploadId=uid,
                                        MultipartUpload={"Parts": parts})
    md5s = hashlib.md5(b"".join(hashlib.md5(c).digest() for c in chunks)).hexdigest()
    assert done["ETag"] == f'"{md5s}-3"'
    got = s3.get_object(Bucket="multi", Key="big.bin")
    assert got["Body"].read() == data
    assert got["ETag"] == done["ETag"] and got["ContentType"] == "application/x-big"
    assert got["Metadata"] == {"kind": "multipart"}
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="multi")
    assert error_of(s3.list_parts, Bucket="multi", Key="big.bin", UploadId=uid) == ("NoSuchUpload", 404)

    # Too-small parts before the last, and abort.
    small = s3.create_multipart_upload(Bucket="multi", Key="small")["UploadId"]
    e1 = s3.upload_part(Bucket="multi", Key="small", UploadId=small, PartNumber=1, Body=b"a")["ETag"]
    e2 = s3.upload_part(Bucket="multi", Key="small", UploadId=small, PartNumber=2, Body=b"b")["ETag"]
    assert error_of(s3.complete_multipart_upload, Bucket="multi", Key="small", UploadId=small,
                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}) \
        == ("EntityTooSmall", 400)
    s3.abort_multipart_upload(Bucket="multi", Key="small", UploadId=small)
    assert error_of(s3.abort_multipart_upload, Bucket="multi", Key="small", UploadId=small) == ("NoSuchUpload", 404)
    assert error_of(s3.upload_part, Bucket="multi", Key="small", UploadId=small, PartNumber=1, Body=b"x") \
        == ("NoSuchUpload", 404)


def test_managed_transfer_uses_multipart(s3, tmp_path):
    s3.create_bucket(Bucket="xfer")
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(20 * MiB))
    s3.upload_file(str(src), "xfer", "f.bin")  # boto3 splits at 8 MiB
    assert s3.head_object(Bucket="xfer", Key="f.bin")["ETag"].endswith('-3"')
    dst = tmp_path / "dst.bin"
    s3.download_file("xfer", "f.bin", str(dst))  # ranged, concurrent GETs
    assert dst.read_bytes() == src.read_bytes()


def test_presigned_urls_with_curl(up):
    s3 = up.s3()
    signer = boto3.client("s3", endpoint_url=up.s3_endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY,
                          config=botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket="pre")
    s3.put_object(Bucket="pre", Key="doc.txt", Body=b"for your eyes", ContentType="text/plain")
    url = signer.generate_presigned_url("get_object", Params={"Bucket": "pre", "Key": "doc.txt"}, ExpiresIn=300)
    assert "X-Amz-Signature=" in url
    assert curl(url) == (200, b"for your eyes")
    put_url = signer.generate_presigned_url("put_object", Params={"Bucket": "pre", "Key": "up.bin"}, ExpiresIn=300)
    payload = os.urandom(100_000)
    assert curl_put(put_url, payload) == 200
    assert s3.get_object(Bucket="pre", Key="up.bin")["Body"].read() == payload
    # boto3's default presigning (SigV2 query string) works too.
    legacy = s3.generate_presigned_url("get_object", Params={"Bucket": "pre", "Key": "up.bin"})
    assert curl(legacy) == (200, payload)
    # A tampered signature or an unsigned request is refused.
    status, body = curl(url[:-4] + "0000")
    assert status == 403 and b"SignatureDoesNotMatch" in body
    status, body = curl(f"{up.s3_endpoint}/pre/doc.txt")
    assert status == 403 and b"AccessDenied" in body


def curl_put(url, payload):
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
                        "--data-binary", "@-", url], input=payload, capture_output=True, timeout=60)
    return int(r.stdout)


def test_wrong_secret_is_signature_does_not_match(up):
    assert error_of(up.s3(secret="wrong-secret").list_buckets) == ("SignatureDoesNotMatch", 403)
    assert error_of(up.s3(secret="wrong-secret").put_object, Bucket="some-bucket", Key="y", Body=b"z") \
        == ("SignatureDoesNotMatch", 403)


def test_cors_configuration(s3):
    s3.create_bucket(Bucket="web")
    assert error_of(s3.get_bucket_cors, Bucket="web") == ("NoSuchCORSConfiguration", 404)
    rules = [{"AllowedMethods": ["GET", "PUT"], "AllowedOrigins": ["https://example.com"],
              "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 3000}]
    s3.put_bucket_cors(Bucket="web", CORSConfiguration={"CORSRules": rules})
    assert s3.get_bucket_cors(Bucket="web")["CORSRules"] == rules
    s3.delete_bucket_cors(Bucket="web")
    assert error_of(s3.get_bucket_cors, Bucket="web") == ("NoSuchCORSConfiguration", 404)


def test_lifecycle_configuration_stored(s3):
    s3.create_bucket(Bucket="life")
    assert error_of(s3.get_bucket_lifecycle_configuration, Bucket="life") == ("NoSuchLifecycleConfiguration", 404)
    rules = [{"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}},
             {"ID": "mpu", "Status": "Enabled", "Filter": {"Prefix": ""},
              "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}]
    s3.put_bucket_lifecycle_configuration(Bucket="life", LifecycleConfiguration={"Rules": rules})
    assert s3.get_bucket_lifecycle_configuration(Bucket="life")["Rules"] == rules
    bad = [{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 0}}]
    assert error_of(s3.put_bucket_lifecycle_configuration, Bucket="life",
                    LifecycleConfiguration={"Rules": bad}) == ("InvalidArgument", 400)
    s3.delete_bucket_lifecycle(Bucket="life")
    assert error_of(s3.get_bucket_lifecycle_configuration, Bucket="life") == ("NoSuchLifecycleConfiguration", 404)


def test_lifecycle_expiration_is_applied(up_factory):
    # One lifecycle "day" is one second here.
    up = up_factory({}, "--s3-lifecycle-day", "1", "--s3-sweep-interval", "0.2")
    s3 = up.s3()
    s3.create_bucket(Bucket="expiring")
    s3.put_bucket_lifecycle_configuration(Bucket="expiring", LifecycleConfiguration={"Rules": [
        {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 2}},
        {"ID": "off", "Status": "Disabled", "Filter": {"Prefix": "keep/"}, "Expiration": {"Days": 1}},
        {"ID": "mpu", "Status": "Enabled", "Filter": {"Prefix": "up/"},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
    ]})
    s3.put_object(Bucket="expiring", Key="tmp/a", Body=b"1")
    s3.put_object(Bucket="expiring", Key="keep/b", Body=b"2")
    s3.put_object(Bucket="expiring", Key="other", Body=b"3")
    s3.create_multipart_upload(Bucket="expiring", Key="up/partial")
    s3.create_multipart_upload(Bucket="expiring", Key="elsewhere")

    def keys():
        return [o["Key"] for o in s3.list_objects_v2(Bucket="expiring").get("Contents", [])]

    def uploads():
        return [u["Key"] for u in s3.list_multipart_uploads(Bucket="expiring").get("Uploads", [])]

    wait_for(lambda: "tmp/a" not in keys(), timeout=60, what="tmp/a to expire")
    wait_for(lambda: uploads() == ["elsewhere"], timeout=60, what="the stale upload to be aborted")
    assert keys() == ["keep/b", "other"]


def test_aws_cli(up, tmp_path):
    aws(up, "s3", "mb", "s3://cli-bucket")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "one.txt").write_text("one")
    (tmp_path / "dir" / "two.txt").write_text("two")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20 * MiB))
    aws(up, "s3", "cp", "--only-show-errors", str(big), "s3://cli-bucket/big.bin")
    aws(up, "s3", "sync", "--only-show-errors", str(tmp_path / "dir"), "s3://cli-bucket/dir")
    ls = aws(up, "s3", "ls", "s3://cli-bucket/").stdout
    assert "PRE dir/" in ls and "big.bin" in ls
    assert sorted(line.split()[-1] for line in aws(up, "s3", "ls", "--recursive", "s3://cli-bucket").stdout
                  .splitlines()) == ["big.bin", "dir/one.txt", "dir/two.txt"]
    aws(up, "s3", "cp", "--only-show-errors", "s3://cli-bucket/big.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()

    head = json.loads(aws(up, "s3api", "head-object", "--bucket", "cli-bucket", "--key", "big.bin").stdout)
    assert head["ContentLength"] == 20 * MiB and head["ETag"].endswith('-3"')
    aws(up, "s3api", "put-object", "--bucket", "cli-bucket", "--key", "api.txt", "--body",
        str(tmp_path / "dir" / "one.txt"), "--content-type", "text/plain", "--metadata", "a=b")
    aws(up, "s3api", "get-object", "--bucket", "cli-bucket", "--key", "api.txt", "--range", "bytes=0-1",
        str(tmp_path / "part"))
    assert (tmp_path / "part").read_text() == "on"
    listed = json.loads(aws(up, "s3api", "list-objects-v2", "--bucket", "cli-bucket", "--prefix", "dir/",
                            "--max-items", "1").stdout)
    assert [o["Key"] for o in listed["Contents"]] == ["dir/one.txt"] and "NextToken" in listed
    assert json.loads(aws(up, "s3api", "head-object", "--bucket", "cli-bucket", "--key", "api.txt").stdout)[
        "Metadata"] == {"a": "b"}
    aws(up, "s3api", "copy-object", "--bucket", "cli-bucket", "--key", "api-copy.txt",
        "--copy-source", "cli-bucket/api.txt")
    url = aws(up, "s3", "presign", "s3://cli-bucket/api-copy.txt").stdout.strip()
    assert curl(url) == (200, b"one")

    r = aws(up, "s3", "rb", "s3://cli-bucket", check=False)
    assert r.returncode != 0 and "BucketNotEmpty" in r.stderr
    aws(up, "s3", "rm", "--only-show-errors", "--recursive", "s3://cli-bucket")
    aws(up, "s3", "rb", "s3://cli-bucket")
    assert "cli-bucket" not in aws(up, "s3", "ls").stdout


WRITER = (
    "import boto3\n"
    "def handler(event, context):\n"
    "    s3 = boto3.client('s3')\n"
    "    s3.put_object(Bucket=event['bucket'], Key='from-lambda', Body=b'written by a function')\n"
    "    return s3.get_object(Bucket=event['bucket'], Key='from-lambda')['Body'].read().decode()\n")


def writer_function(tmp_path):
    code = tmp_path / "fn"
    code.mkdir(exist_ok=True)
    (code / "app.py").write_text(WRITER)
    return {"writer": {"runtime": "python3.12", "handler": "app.handler", "code": {"dir": str(code)},
                       "timeout_s": 30}}


def test_function_reaches_s3_without_an_endpoint_in_its_code(up_factory, tmp_path):
    up = up_factory(writer_function(tmp_path))
    assert f"S3 endpoint: {up.s3_endpoint}" in "".join(up.output)
    up.s3().create_bucket(Bucket="fn-data")
    r = up.client().invoke(FunctionName="writer", Payload=json.dumps({"bucket": "fn-data"}).encode())
    assert json.loads(r["Payload"].read()) == "written by a function", r
    assert up.s3().get_object(Bucket="fn-data", Key="from-lambda")["Body"].read() == b"written by a function"


def test_external_s3_endpoint_replaces_the_embedded_one(up_factory, tmp_path):
    # Another `up`'s S3 plays the external store (MinIO, RustFS...).
    external = up_factory({}, data_dir=tmp_path / "external")
    external.s3().create_bucket(Bucket="ext-data")
    up = up_factory(writer_function(tmp_path), "--s3-endpoint", external.s3_endpoint, data_dir=tmp_path / "main")
    assert f"S3 endpoint: {external.s3_endpoint}" in "".join(up.output)
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        up.s3().list_buckets()  # the embedded S3 was not started
    r = up.client().invoke(FunctionName="writer", Payload=json.dumps({"bucket": "ext-data"}).encode())
    assert json.loads(r["Payload"].read()) == "written by a function", r
    assert external.s3().get_object(Bucket="ext-data", Key="from-lambda")["Body"].read() == b"written by a function"


def test_no_auth_serves_any_signature_and_anonymous_requests(up_factory):
    up = up_factory({}, "--no-auth")
    s3 = up.s3(secret="anything")
    s3.create_bucket(Bucket="open")
    s3.put_object(Bucket="open", Key="k", Body=b"v")
    assert curl(f"{up.s3_endpoint}/open/k") == (200, b"v")


def payload_for(i: int) -> bytes:
    # Deterministic, varied sizes (1 KiB .. ~1.5 MiB) so a torn write would show.
    size = 1024 + (i * 7919) % (1536 * 1024)
    seed = hashlib.sha256(str(i).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def test_kill_9_during_puts_loses_no_acknowledged_object(up_factory, tmp_path):
    data_dir = tmp_path / "data"
    up = up_factory({}, data_dir=data_dir)
    s3 = up.s3()
    s3.create_bucket(Bucket="durable")
    acked, attempted = [], set()
    stop = threading.Event()

    def writer(worker):
        client = up.s3()
        i = worker
        while not stop.is_set():
            attempted.add(i)
            try:
                client.put_object(Bucket="durable", Key=f"obj-{i:06d}", Body=payload_for(i))
            except Exception:
                return  # the server is gone
            acked.append(i)
            i += 4

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for w in range(4):
            pool.submit(writer, w)
        wait_for(lambda: len(acked) >= 60, timeout=120, what="60 acknowledged PUTs")
        up.kill9()
        stop.set()
    assert len(attempted) > len(acked), "the kill came while PUTs were in flight"

    up.start()
    s3 = up.s3()
    listed = {o["Key"]: o for o in s3.get_paginator("list_objects_v2").paginate(Bucket="durable")
              .search("Contents[]")}
    for i in acked:
        key = f"obj-{i:06d}"
        assert key in listed, f"acknowledged {key} lost"
    for key, o in listed.items():
        i = int(key.split("-")[1])
        assert i in attempted
        expected = payload_for(i)
        # Every visible object, acknowledged or caught in flight, is whole.
        assert o["Size"] == len(expected), key
        assert o["ETag"] == f'"{hashlib.md5(expected).hexdigest()}"', key
        assert s3.get_object(Bucket="durable", Key=key)["Body"].read() == expected, key
    assert list((data_dir / "s3" / "tmp").iterdir()) == [], "startup removes interrupted writes"
