"""`make smoke` against a deployed stack: a dry run, and the preflight's verdict printed (fake AWS CLI)."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

FAKE_AWS = """#!/usr/bin/env bash
# A stand-in for the AWS CLI: answers the calls tools/smoke.sh makes, records the start input.
case "$1 $2" in
  "cloudformation describe-stacks") echo "arn:aws:states:eu-west-1:123456789012:stateMachine:web-rolling-restart" ;;
  "stepfunctions start-execution")
    for ((i = 1; i <= $#; i++)); do
      [ "${!i}" = --input ] && { j=$((i + 1)); echo "${!j}" > "$FAKE_DIR/input.json"; }
    done
    echo "arn:aws:states:eu-west-1:123456789012:execution:web-rolling-restart:smoke" ;;
  "stepfunctions describe-execution")
    case "$*" in
      *"--query status"*) cat "$FAKE_DIR/status" ;;
      *"--query output"*) cat "$FAKE_DIR/output.json" ;;
      *) cat "$FAKE_DIR/cause" ;;
    esac ;;
  *) echo "unexpected aws call: $*" >&2; exit 3 ;;
esac
"""


def smoke(tmp_path: Path, status: str, output: Any = None, cause: str = "") -> "subprocess.CompletedProcess[str]":
    (tmp_path / "aws").write_text(FAKE_AWS)
    (tmp_path / "aws").chmod(0o755)
    (tmp_path / "status").write_text(status)
    (tmp_path / "output.json").write_text(json.dumps(output or {}))
    (tmp_path / "cause").write_text(cause)
    (tmp_path / "input.json").touch()
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "FAKE_DIR": str(tmp_path)}
    sample = str(ROOT / "events" / "rolling_restart" / "production.json")
    return subprocess.run(
        ["bash", str(ROOT / "tools" / "smoke.sh"), "web", sample], capture_output=True, text=True, env=env, check=False
    )


def test_a_passed_preflight_is_printed_with_the_plan(tmp_path: Path) -> None:
    plan = {"summary": "Restart 12 of 12 targets", "preflight": {"verdict": "ok", "checked": 12, "checks": ["a", "b"]}}

    done = smoke(tmp_path, "SUCCEEDED", plan)

    assert done.returncode == 0, done.stderr
    assert "PREFLIGHT PASSED: a; b (12 instances)" in done.stdout and "Restart 12 of 12" in done.stdout
    sent = json.loads((tmp_path / "input.json").read_text())
    assert sent["dryRun"] is True and sent["batchSize"] == "25%", "the given input, as a dry run"


def test_a_refusal_is_printed_and_fails_the_command(tmp_path: Path) -> None:
    done = smoke(tmp_path, "FAILED", cause="PreflightFailedError\tPreflight failed, nothing was changed: i-1: ...")

    assert done.returncode == 1
    assert "REFUSED (FAILED)" in done.stderr and "PreflightFailedError" in done.stderr
