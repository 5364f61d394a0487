#!/usr/bin/env bash
# The first run on a real account: a dry run of the rolling restart against a deployed stack.
# It changes nothing; it plans, then the preflight proves every instance may be rebooted (EC2 dry run)
# and every health URL answers from where the startup check runs. Prints the verdict; exit 1 if refused.
# Usage: tools/smoke.sh STACK [INPUT.json]   (AWS CLI v2 and credentials for the stack's account)
set -euo pipefail
stack=${1:?usage: tools/smoke.sh STACK [INPUT.json]}
input=${2:-}
arn=$(aws cloudformation describe-stacks --stack-name "$stack" \
  --query "Stacks[0].Outputs[?OutputKey=='RollingRestartStateMachineArn'].OutputValue" --output text)
[ -n "$arn" ] && [ "$arn" != "None" ] || { echo "stack $stack has no RollingRestartStateMachineArn output" >&2; exit 2; }
payload=$(python3 -c 'import json, sys
data = json.load(open(sys.argv[1])) if len(sys.argv) > 1 and sys.argv[1] else {}
data["dryRun"] = True
print(json.dumps(data))' "$input")
execution=$(aws stepfunctions start-execution --state-machine-arn "$arn" --name "smoke-$(date +%Y%m%d-%H%M%S)" \
  --input "$payload" --query executionArn --output text)
echo "dry run: $execution"
for _ in $(seq 1 150); do
  status=$(aws stepfunctions describe-execution --execution-arn "$execution" --query status --output text)
  [ "$status" = RUNNING ] || break
  sleep 2
done
case "$status" in
  SUCCEEDED)
    aws stepfunctions describe-execution --execution-arn "$execution" --query output --output text | python3 -c \
      'import json, sys; p = json.load(sys.stdin); f = p["preflight"]
print("PREFLIGHT PASSED: " + "; ".join(f["checks"]) + " (%d instances)" % f["checked"]); print(p["summary"])'
    ;;
  RUNNING)
    echo "still running after 5 minutes: see $execution in the Step Functions console" >&2; exit 1 ;;
  *)
    echo "REFUSED ($status):" >&2
    aws stepfunctions describe-execution --execution-arn "$execution" --query '[error, cause]' --output text >&2
    exit 1 ;;
esac
