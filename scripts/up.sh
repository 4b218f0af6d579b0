#!/usr/bin/env bash
# `make up`: runs the whole platform on this machine with the example app
# (examples/app/template.yaml), in the foreground. Ctrl-C drains in-flight invocations and stops
# every worker. Extra arguments go to `lambdock up` (`--parameter-overrides Greeting=Howdy`).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
cat <<MSG
Call the example app (in another terminal; examples/app/README.md has more):
  curl 'http://127.0.0.1:3000/hello?name=lambdock'
  curl http://127.0.0.1:3000/items/42
  export AWS_ACCESS_KEY_ID=lambdock AWS_SECRET_ACCESS_KEY=lambdock-secret AWS_DEFAULT_REGION=us-east-1
  .venv/bin/aws --endpoint-url http://127.0.0.1:3001 lambda invoke --function-name hello:live --payload '{}' /dev/stdout
  .venv/bin/aws --endpoint-url http://127.0.0.1:8000 dynamodb scan --table-name lambdock-visits
  target/release/lambdock invoke items --payload '{"pathParameters":{"id":"7"}}' --log-type Tail
  target/release/lambdock ps
  target/release/lambdock schedules
MSG
exec "$repo/target/release/lambdock" up -t "$repo/examples/app/template.yaml" \
  --rie "$repo/target/release/lambdock-rie" --python "$repo/.venv/bin/python" "$@"
