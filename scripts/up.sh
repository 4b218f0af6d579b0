#!/usr/bin/env bash
# `make up`: serves the example function under lambdock-rie in the foreground, until the
# gateway (`lambdock up`) takes over this command. Ctrl-C stops it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
addr=${LAMBDOCK_RIE_ADDRESS:-127.0.0.1:8080}
cd "$repo/examples/hello-python"
cat <<MSG
lambdock-rie is serving examples/hello-python (Python, awslambdaric) on http://$addr
Invoke it:
  curl -s -XPOST http://$addr/2015-03-31/functions/function/invocations -d '{"name":"lambdock"}'
  curl -s -D - -XPOST -H 'X-Amz-Log-Type: Tail' http://$addr/2015-03-31/functions/function/invocations -d '{}'
Ctrl-C to stop.
MSG
export AWS_LAMBDA_FUNCTION_NAME=hello-python AWS_LAMBDA_FUNCTION_TIMEOUT=10 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128
export LAMBDA_TASK_ROOT="$repo/examples/hello-python"
exec "$repo/target/release/lambdock-rie" --runtime-interface-emulator-address "$addr" \
  --runtime-api-address 127.0.0.1:0 --init-mode eager \
  "$repo/.venv/bin/python" -m awslambdaric app.handler
