#!/usr/bin/env bash
# `make up`: runs the whole platform on this machine with the example app, in the foreground.
# Ctrl-C drains in-flight invocations and stops every worker.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
cat <<MSG
Call the example function (in another terminal):
  export AWS_ACCESS_KEY_ID=lambdock AWS_SECRET_ACCESS_KEY=lambdock-secret AWS_DEFAULT_REGION=us-east-1
  .venv/bin/aws --endpoint-url http://127.0.0.1:3001 lambda invoke --function-name hello --payload '{"name":"lambdock"}' /dev/stdout
  target/release/lambdock invoke hello --payload '{"name":"lambdock"}' --log-type Tail
  target/release/lambdock ps
MSG
exec "$repo/target/release/lambdock" up --manifest "$repo/examples/manifest.json" \
  --rie "$repo/target/release/lambdock-rie" --python "$repo/.venv/bin/python" "$@"
