"""HTTP routes on the API port, as API Gateway serves them: REST (payload 1.0) and HTTP APIs
(payload 2.0) from a hand-written manifest, against the real `lambdock up`."""

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import shutil
import subprocess
import threading
import time

import pytest

from conftest import REPO, Up, free_port

JWT_SECRET = "test-secret-of-at-least-32-characters!"
API_KEY, USER, PASSWORD = "test-api-key", "alice", "wonderland"
FIXTURE = str(REPO / "fixtures/python")


def function(handler, **extra):
    return {"runtime": "python3.12", "handler": handler, "code": {"dir": FIXTURE}, **extra}


def route(api, method, path, function_name, version, **extra):
    return {"api": api, "method": method, "path": path, "function": function_name,
            "payload_version": version, **extra}


def write_manifest(tmp, page_origin):
    cors_http = {"allow_origins": [page_origin], "allow_methods": ["GET", "PUT", "POST"],
                 "allow_headers": ["x-custom", "content-type"], "expose_headers": ["x-exposed"],
                 "max_age_s": 60}
    manifest = {
        "schema_version": 1,
        "functions": {
            "echo": function("apigw.echo"),
            "respond": function("apigw.respond"),
            "slow": function("apigw.slow", timeout_s=10),
            "fail": function("apigw.fail"),
        },
        "apis": {
            "Rest": {"kind": "rest", "stage": "Prod", "binary_media_types": ["image/png"],
                     "cors": {"allow_origins": ["https://rest.example"], "allow_headers": ["x-custom"],
                              "max_age_s": 30},
                     "authorizers": {"Platform": {"type": "lambdock"}}},
            "Http": {"kind": "http", "stage": "$default", "cors": cors_http,
                     "authorizers": {"Jwt": {"type": "jwt", "identity_source": "$request.header.Authorization",
                                             "issuer": "lambdock", "audience": ["lambdock"]}}},
        },
        "routes": [
            route("Rest", "GET", "/rest/items/{id}", "echo", "1.0"),
            route("Rest", "ANY", "/rest/files/{proxy+}", "echo", "1.0"),
            route("Rest", "POST", "/rest/respond", "respond", "1.0"),
            route("Rest", "GET", "/rest/private", "echo", "1.0", authorizer="Platform"),
            route("Rest", "GET", "/rest/keyed", "echo", "1.0", api_key_required=True),
            route("Rest", "GET", "/rest/slow", "slow", "1.0"),
            route("Rest", "GET", "/rest/fail", "fail", "1.0"),
            route("Http", "GET", "/http/items/{id}", "echo", "2.0"),
            route("Http", "ANY", "/http/files/{proxy+}", "echo", "2.0"),
            route("Http", "POST", "/http/respond", "respond", "2.0"),
            route("Http", "POST", "/http/respond1", "respond", "1.0"),
            route("Http", "GET", "/http/private", "echo", "2.0", authorizer="Jwt"),
            route("Http", "GET", "/http/scoped", "echo", "2.0", authorizer="Jwt", authorization_scopes=["admin"]),
            route("Http", "PUT", "/http/cors", "echo", "2.0"),
            route("Http", "GET", "/http/fail", "fail", "2.0"),
            route("Http", "GET", "/http/slow", "slow", "2.0"),
        ],
    }
    path = tmp / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


class Page:
    """The web page of another origin that the browser test loads, and where it reports."""

    def __init__(self):
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.html = ""
        self.reports = []
        self.reported = threading.Event()
        page = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = page.html.encode()
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                page.reports.append(json.loads(self.rfile.read(length)))
                page.reported.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def page():
    p = Page()
    yield p
    p.close()


@pytest.fixture(scope="module")
def up(tmp_path_factory, page):
    tmp = tmp_path_factory.mktemp("routes")
    u = Up(write_manifest(tmp, page.origin), tmp / "data",
           "--jwt-secret", JWT_SECRET, "--api-keys", f"other-key,{API_KEY}", "--auth-user", USER,
           "--auth-password", PASSWORD, "--integration-timeout", "2")
    yield u
    u.stop()


def call(up, method, path, headers=(), body=b""):
    """One request with headers in the given order (repeats kept): (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", up.api_port, timeout=60)
    conn.putrequest(method, path, skip_accept_encoding=True)
    for name, value in headers:
        conn.putheader(name, value)
    if body or method in ("POST", "PUT"):
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    out = (resp.status, resp.getheaders(), resp.read())
    conn.close()
    return out


def header_values(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def event_of(up, method, path, headers=(), body=b""):
    status, _, raw = call(up, method, path, headers, body)
    assert status == 200, raw
    return json.loads(raw)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims, secret=JWT_SECRET):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{b64url(sig)}"


def login(up, key=API_KEY, user=USER, password=PASSWORD):
    body = json.dumps({"AuthParameters": {"USERNAME": user, "PASSWORD": password}}).encode()
    return call(up, "POST", "/user/auth/v1", [("x-api-key", key), ("Content-Type", "application/json")], body)


# --- events ---------------------------------------------------------------------------------

def test_rest_payload_1_0_every_field_on_get(up):
    started_ms = int(time.time() * 1000)
    e = event_of(up, "GET", "/rest/items/a%20b?x=1&x=2&y=%2F&flag", [
        ("X-Repeated", "one"), ("X-Repeated", "two"), ("Cookie", "c1=v1; c2=v2"), ("User-Agent", "route-test/1"),
        ("x-lower", "l"), ("X-MiXeD-CaSe", "m")])
    assert e["resource"] == "/rest/items/{id}"
    assert e["path"] == "/rest/items/a b"
    assert e["httpMethod"] == "GET"
    assert e["headers"]["X-Repeated"] == "two"
    assert e["multiValueHeaders"]["X-Repeated"] == ["one", "two"]
    assert e["headers"]["Cookie"] == "c1=v1; c2=v2"
    assert e["headers"]["User-Agent"] == "route-test/1"
    # Payload 1.0 keeps the caller's spelling of header names.
    assert e["headers"]["x-lower"] == "l" and e["headers"]["X-MiXeD-CaSe"] == "m"
    assert e["multiValueHeaders"]["X-MiXeD-CaSe"] == ["m"]
    assert e["headers"]["Host"] == f"127.0.0.1:{up.api_port}"
    assert e["queryStringParameters"] == {"x": "2", "y": "/", "flag": ""}
    assert e["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["/"], "flag": [""]}
    assert e["pathParameters"] == {"id": "a b"}
    assert e["stageVariables"] is None
    assert e["body"] is None and e["isBase64Encoded"] is False
    assert "version" not in e
    c = e["requestContext"]
    assert c["accountId"] == "123456789012"
    assert len(c["apiId"]) == 10 and len(c["resourceId"]) == 6
    assert c["resourcePath"] == "/rest/items/{id}"
    assert c["httpMethod"] == "GET"
    assert c["path"] == "/Prod/rest/items/a%20b"
    assert c["stage"] == "Prod"
    assert c["protocol"] == "HTTP/1.1"
    assert c["requestTimeEpoch"] >= started_ms
    assert time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(c["requestTimeEpoch"] / 1000)) == c["requestTime"]
    assert c["domainName"] == f"127.0.0.1:{up.api_port}"
    assert c["identity"]["sourceIp"] == "127.0.0.1"
    assert c["identity"]["userAgent"] == "route-test/1"
    assert c["identity"]["apiKey"] is None
    assert "authorizer" not in c


def test_rest_request_id_header_matches_event(up):
    status, headers, raw = call(up, "GET", "/rest/items/1")
    assert status == 200
    assert header_values(headers, "x-amzn-RequestId") == [json.loads(raw)["requestContext"]["requestId"]]


def test_rest_post_greedy_path_binary_body_and_stage_prefix(up):
    png = bytes([0x89, 0x50, 0x4E, 0x47, 0x00, 0xFF, 0x10])
    e = event_of(up, "POST", "/Prod/rest/files/a/b/c.png", [("Content-Type", "image/png")], png)
    assert e["resource"] == "/rest/files/{proxy+}"
    assert e["path"] == "/rest/files/a/b/c.png"
    assert e["requestContext"]["path"] == "/Prod/rest/files/a/b/c.png"
    assert e["pathParameters"] == {"proxy": "a/b/c.png"}
    assert e["httpMethod"] == "POST"
    assert e["isBase64Encoded"] is True
    assert base64.b64decode(e["body"]) == png
    text = event_of(up, "POST", "/rest/files/x", [("Content-Type", "application/json")], b'{"k": "v"}')
    assert text["body"] == '{"k": "v"}' and text["isBase64Encoded"] is False
    assert text["queryStringParameters"] is None and text["multiValueQueryStringParameters"] is None


def test_http_payload_2_0_every_field_on_get(up):
    started_ms = int(time.time() * 1000)
    e = event_of(up, "GET", "/http/items/42?a=1&a=2&b=x%20y", [
        ("X-Repeated", "one"), ("X-Repeated", "two"), ("Cookie", "c1=v1; c2=v2"), ("Cookie", "c3=v3"),
        ("User-Agent", "route-test/2")])
    assert e["version"] == "2.0"
    assert e["routeKey"] == "GET /http/items/{id}"
    assert e["rawPath"] == "/http/items/42"
    assert e["rawQueryString"] == "a=1&a=2&b=x%20y"
    assert e["cookies"] == ["c1=v1", "c2=v2", "c3=v3"]
    assert e["headers"]["x-repeated"] == "one,two"
    assert "cookie" not in e["headers"]
    assert all(k == k.lower() for k in e["headers"])
    assert e["queryStringParameters"] == {"a": "1,2", "b": "x y"}
    assert e["pathParameters"] == {"id": "42"}
    assert "body" not in e and e["isBase64Encoded"] is False
    assert "multiValueHeaders" not in e and "stageVariables" not in e
    c = e["requestContext"]
    assert c["accountId"] == "123456789012" and len(c["apiId"]) == 10
    assert c["domainName"] == f"127.0.0.1:{up.api_port}"
    assert c["http"] == {"method": "GET", "path": "/http/items/42", "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "route-test/2"}
    assert c["routeKey"] == "GET /http/items/{id}"
    assert c["stage"] == "$default"
    assert c["timeEpoch"] >= started_ms
    assert time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(c["timeEpoch"] / 1000)) == c["time"]


def test_http_post_greedy_any_and_binary_body(up):
    blob = bytes(range(256))
    e = event_of(up, "DELETE", "/http/files/deep/er/x.bin?q=1", [("Content-Type", "application/octet-stream")], blob)
    assert e["routeKey"] == "ANY /http/files/{proxy+}"
    assert e["pathParameters"] == {"proxy": "deep/er/x.bin"}
    assert e["requestContext"]["http"]["method"] == "DELETE"
    assert e["isBase64Encoded"] is True and base64.b64decode(e["body"]) == blob
    text = event_of(up, "POST", "/http/files/t", [("Content-Type", "text/plain; charset=utf-8")], "héllo".encode())
    assert text["body"] == "héllo" and text["isBase64Encoded"] is False


def test_unknown_routes_get_the_rest_error_when_a_rest_api_shares_the_port(up):
    for method, path in [("GET", "/nowhere"), ("POST", "/rest/items/1"), ("GET", "/http/files")]:
        status, headers, body = call(up, method, path)
        assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})


# --- response mapping -----------------------------------------------------------------------

def respond(up, path, result, headers=()):
    return call(up, "POST", path, [("Content-Type", "application/json"), *headers], json.dumps(result).encode())


def test_v1_response_mapping_multi_value_headers_cookies_and_binary(up):
    status, headers, body = respond(up, "/rest/respond", {
        "statusCode": 201, "headers": {"X-Single": "s", "X-Both": "from-headers", "Content-Type": "text/plain"},
        "multiValueHeaders": {"X-Both": ["m1", "m2"], "Set-Cookie": ["a=1; Path=/", "b=2"]},
        "body": "created"})
    assert status == 201 and body == b"created"
    assert header_values(headers, "x-single") == ["s"]
    assert header_values(headers, "x-both") == ["m1", "m2"]
    assert header_values(headers, "set-cookie") == ["a=1; Path=/", "b=2"]
    png = bytes([0x89, 0x50, 0x4E, 0x47, 0, 1, 2, 255])
    result = {"statusCode": 200, "headers": {"Content-Type": "image/png"},
              "body": base64.b64encode(png).decode(), "isBase64Encoded": True}
    status, headers, body = respond(up, "/rest/respond", result, [("Accept", "image/png")])
    assert (status, body) == (200, png)
    # HTTP APIs decode base64 results whatever the types.
    status, _, body = respond(up, "/http/respond1", result)
    assert (status, body) == (200, png)


def test_v1_malformed_results_are_502_on_rest_and_500_on_http(up):
    for result in [{"body": "no status"}, "a string", {"statusCode": 200, "body": {"not": "a string"}}]:
        status, _, body = respond(up, "/rest/respond", result)
        assert (status, body) == (502, b'{"message": "Internal server error"}')
        status, _, body = respond(up, "/http/respond1", result)
        assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})


def test_v2_response_mapping(up):
    status, headers, body = respond(up, "/http/respond", {
        "statusCode": 202, "headers": {"x-a": "1", "content-type": "text/plain"},
        "cookies": ["a=1; Path=/", "b=2; HttpOnly"], "body": "accepted"})
    assert (status, body) == (202, b"accepted")
    assert header_values(headers, "x-a") == ["1"]
    assert header_values(headers, "set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    blob = bytes([0, 1, 2, 3, 254, 255])
    status, _, body = respond(up, "/http/respond", {
        "statusCode": 200, "body": base64.b64encode(blob).decode(), "isBase64Encoded": True})
    assert (status, body) == (200, blob)
    # Plain results: 200, application/json, the string's text or the JSON itself.
    status, headers, body = respond(up, "/http/respond", "Hello from Lambda!")
    assert (status, body) == (200, b"Hello from Lambda!")
    assert header_values(headers, "content-type") == ["application/json"]
    status, _, body = respond(up, "/http/respond", {"message": "Hello from Lambda!"})
    assert (status, json.loads(body)) == (200, {"message": "Hello from Lambda!"})


def test_function_errors_and_timeouts(up):
    status, _, body = call(up, "GET", "/rest/fail")
    assert (status, body) == (502, b'{"message": "Internal server error"}')
    status, _, body = call(up, "GET", "/http/fail")
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
    # The integration timeout is 2 s here; the function sleeps 5.
    status, _, body = call(up, "GET", "/rest/slow?seconds=5")
    assert (status, body) == (504, b'{"message": "Endpoint request timed out"}')
    status, _, body = call(up, "GET", "/http/slow?seconds=5")
    assert (status, json.loads(body)) == (503, {"message": "Service Unavailable"})
    # The function finished on its worker meanwhile; a short call answers normally.
    status, _, body = call(up, "GET", "/http/slow?seconds=0")
    assert (status, body) == (200, b"slept")


def test_oversize_payload_is_413(up):
    status, _, body = call(up, "POST", "/http/files/big", [("Content-Type", "application/octet-stream")],
                           b"x" * (10 * 1024 * 1024 + 1))
    assert (status, json.loads(body)) == (413, {"message": "Request Entity Too Large"})


# --- auth -----------------------------------------------------------------------------------

def test_login_with_right_and_wrong_key_and_password(up):
    status, headers, body = login(up)
    assert status == 200
    token = json.loads(body)["AuthenticationResult"]["IdToken"]
    assert token.count(".") == 2
    assert header_values(headers, "padma_user_authorized") == ["true"]
    status, headers, body = login(up, key="wrong")
    assert (status, json.loads(body)) == (401, {"message": "Unauthorized"})
    assert header_values(headers, "padma_user_authorized") == []
    status, headers, body = login(up, password="wrong")
    assert (status, json.loads(body)) == (401, {"message": "Unauthorized"})
    assert header_values(headers, "padma_user_authorized") == ["true"]
    status, _, _ = call(up, "POST", "/user/auth/v1", [("x-api-key", API_KEY)], b"{}")
    assert status == 422


def test_rest_route_with_the_platforms_token(up):
    token = json.loads(login(up)[2])["AuthenticationResult"]["IdToken"]
    status, _, body = call(up, "GET", "/rest/private")
    assert (status, json.loads(body)) == (401, {"message": "Unauthorized"})
    e = event_of(up, "GET", "/rest/private", [("Authorization", f"Bearer {token}")])
    claims = e["requestContext"]["authorizer"]["claims"]
    assert claims["sub"] == USER and claims["cognito:username"] == USER
    assert claims["iss"] == "lambdock"
    now = int(time.time())
    expired = make_jwt({"sub": USER, "iss": "lambdock", "iat": now - 7200, "exp": now - 3600})
    status, _, body = call(up, "GET", "/rest/private", [("Authorization", f"Bearer {expired}")])
    assert (status, json.loads(body)) == (401, {"message": "The incoming token has expired"})


def test_http_jwt_route_rejects_missing_expired_tampered_tokens(up):
    now = int(time.time())
    claims = {"sub": "bob", "iss": "lambdock", "aud": "lambdock", "exp": now + 600, "scope": "read admin",
              "groups": ["a", "b"]}
    valid = make_jwt(claims)
    auth = lambda t: [("Authorization", f"Bearer {t}")]
    unauthorized = (401, {"message": "Unauthorized"})
    status, _, body = call(up, "GET", "/http/private")
    assert (status, json.loads(body)) == unauthorized
    expired = make_jwt({**claims, "exp": now - 60})
    status, _, body = call(up, "GET", "/http/private", auth(expired))
    assert (status, json.loads(body)) == unauthorized
    head, payload, sig = valid.split(".")
    tampered_claims = b64url(json.dumps({**claims, "sub": "mallory"}).encode())
    for bad in [f"{head}.{tampered_claims}.{sig}", make_jwt(claims, secret="not-the-secret-of-this-platform!"),
                make_jwt({**claims, "aud": "someone-else"}), "not.a.jwt"]:
        status, _, body = call(up, "GET", "/http/private", auth(bad))
        assert (status, json.loads(body)) == unauthorized, bad
    e = event_of(up, "GET", "/http/private", auth(valid))
    jwt = e["requestContext"]["authorizer"]["jwt"]
    assert jwt["claims"]["sub"] == "bob" and jwt["claims"]["groups"] == "[a b]"
    assert jwt["claims"]["exp"] == str(now + 600)
    assert jwt["scopes"] == ["read", "admin"]
    # Scopes: a token without the route's scope is forbidden.
    assert event_of(up, "GET", "/http/scoped", auth(valid))["routeKey"] == "GET /http/scoped"
    status, _, body = call(up, "GET", "/http/scoped", auth(make_jwt({**claims, "scope": "read"})))
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})
    # The login's own token works on JWT routes naming the platform's issuer.
    token = json.loads(login(up)[2])["AuthenticationResult"]["IdToken"]
    assert event_of(up, "GET", "/http/private", auth(token))["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == USER


def test_api_key_routes(up):
    status, _, body = call(up, "GET", "/rest/keyed")
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})
    status, _, _ = call(up, "GET", "/rest/keyed", [("x-api-key", "wrong")])
    assert status == 403
    e = event_of(up, "GET", "/rest/keyed", [("x-api-key", API_KEY)])
    assert e["requestContext"]["identity"]["apiKey"] == API_KEY
    assert e["requestContext"]["identity"]["apiKeyId"]


# --- route table, OpenAPI, CORS -------------------------------------------------------------

def test_route_table_printed_and_openapi_served(up):
    out = "".join(up.output)
    assert f"API routes: http://127.0.0.1:{up.api_port}" in out
    assert f"http://127.0.0.1:{up.api_port}/rest/items/{{id}}" in out
    assert "Route auth" not in out  # every secret was configured
    status, _, body = call(up, "GET", "/openapi.json")
    doc = json.loads(body)
    assert status == 200 and doc["openapi"].startswith("3.")
    assert doc["paths"]["/http/items/{id}"]["get"]["parameters"][0]["name"] == "id"
    assert "x-amazon-apigateway-any-method" in doc["paths"]["/rest/files/{proxy+}"]
    assert doc["paths"]["/http/scoped"]["get"]["security"] == [{"Jwt": ["admin"]}]


def test_rest_preflight_is_the_mock_integration(up):
    status, headers, _ = call(up, "OPTIONS", "/rest/items/1", [("Origin", "https://rest.example"),
                                                              ("Access-Control-Request-Method", "GET")])
    assert status == 200
    assert header_values(headers, "access-control-allow-origin") == ["https://rest.example"]
    assert header_values(headers, "access-control-allow-methods") == ["GET,OPTIONS"]
    assert header_values(headers, "access-control-allow-headers") == ["x-custom"]
    assert header_values(headers, "access-control-max-age") == ["30"]


def test_http_cors_from_curl_view(up, page):
    pre = [("Origin", page.origin), ("Access-Control-Request-Method", "PUT"),
           ("Access-Control-Request-Headers", "x-custom")]
    status, headers, _ = call(up, "OPTIONS", "/http/cors", pre)
    assert status == 204
    assert header_values(headers, "access-control-allow-origin") == [page.origin]
    assert header_values(headers, "access-control-allow-methods") == ["GET,PUT,POST"]
    assert header_values(headers, "access-control-max-age") == ["60"]
    status, headers, _ = call(up, "OPTIONS", "/http/cors", [("Origin", "http://evil.example"), pre[1]])
    assert status == 204 and header_values(headers, "access-control-allow-origin") == []
    status, headers, _ = call(up, "PUT", "/http/cors", [("Origin", page.origin)])
    assert header_values(headers, "access-control-allow-origin") == [page.origin]
    assert header_values(headers, "access-control-expose-headers") == ["x-exposed"]


PAGE = """<!doctype html><html><body><pre id="out">running</pre><script>
const api = "http://127.0.0.1:API_PORT/http/cors";
async function run() {
  const out = {};
  try {
    const r = await fetch(api, {method: "PUT", headers: {"X-Custom": "from-browser", "Content-Type": "application/json"},
                                body: JSON.stringify({hello: "api"})});
    const event = await r.json();
    out.allowed = {status: r.status, exposed: r.headers.get("x-exposed"), method: event.requestContext.http.method,
                   custom: event.headers["x-custom"], origin: event.headers["origin"], body: event.body};
  } catch (e) { out.allowed = {error: String(e)}; }
  try {
    const r = await fetch(api, {method: "PUT", headers: {"X-Not-Allowed": "1"}});
    out.denied = {status: r.status};
  } catch (e) { out.denied = {error: String(e)}; }
  document.getElementById("out").textContent = JSON.stringify(out);
  await fetch("/report", {method: "POST", body: JSON.stringify(out)});
}
run();
</script></body></html>"""


def test_cors_from_a_real_browser(up, page, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is installed by scripts/setup.sh"
    page.html = PAGE.replace("API_PORT", str(up.api_port))
    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={tmp_path / 'chromium'}", "--remote-debugging-port=0", page.origin + "/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert page.reported.wait(90), "the page never reported"
    finally:
        browser.terminate()
        try:
            browser.wait(30)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()
    report = page.reports[-1]
    assert report["allowed"] == {"status": 200, "exposed": "visible", "method": "PUT", "custom": "from-browser",
                                 "origin": page.origin, "body": '{"hello":"api"}'}, report
    # The preflight does not allow the header: the browser refuses to send the request.
    assert "error" in report["denied"], report


# --- configuration and hot reload -----------------------------------------------------------

def small_manifest(tmp, routes):
    manifest = {"schema_version": 1, "functions": {"echo": function("apigw.echo")},
                "apis": {"Http": {"kind": "http", "stage": "$default"}},
                "routes": [route("Http", "GET", path, "echo", "2.0") for path in routes]}
    path = tmp / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def test_dev_secrets_are_generated_and_routes_follow_hot_reload(tmp_path):
    u = Up(small_manifest(tmp_path, ["/one"]), tmp_path / "data")
    try:
        line = next(l for l in u.output if "Route auth (generated for development)" in l)
        generated = dict(item.split("=", 1) for item in line.split(": ", 1)[1].split())
        status, _, body = login(u, key=generated["LAMBDOCK_API_KEYS"], user=generated["LAMBDOCK_AUTH_USER"],
                                password=generated["LAMBDOCK_AUTH_PASSWORD"])
        assert status == 200, body
        assert len(generated["LAMBDOCK_JWT_SECRET"]) >= 32
        assert call(u, "GET", "/one")[0] == 200
        assert call(u, "GET", "/two")[0] == 404
        small_manifest(tmp_path, ["/one", "/two"])
        deadline = time.time() + 60
        while call(u, "GET", "/two")[0] != 200:
            assert time.time() < deadline, "the new route was never served"
            time.sleep(0.2)
    finally:
        u.stop()


def test_production_mode_needs_configured_secrets(tmp_path, monkeypatch):
    from conftest import LAMBDOCK
    path = small_manifest(tmp_path, ["/one"])
    refused = subprocess.run(
        [str(LAMBDOCK), "up", "--manifest", str(path), "--aws-port", str(free_port()), "--api-port",
         str(free_port()), "--data-dir", str(tmp_path / "refused"), "--python", str(REPO / ".venv/bin/python"),
         "--production"], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert "production mode: configure LAMBDOCK_JWT_SECRET" in refused.stderr, refused.stderr
    for name, value in [("LAMBDOCK_JWT_SECRET", JWT_SECRET), ("LAMBDOCK_API_KEYS", API_KEY),
                        ("LAMBDOCK_AUTH_USER", USER), ("LAMBDOCK_AUTH_PASSWORD", PASSWORD),
                        ("LAMBDOCK_PRODUCTION", "true")]:
        monkeypatch.setenv(name, value)
    u = Up(path, tmp_path / "data")
    try:
        assert not any("Route auth" in l for l in u.output)
        assert login(u)[0] == 200
    finally:
        u.stop()
