"""The sandbox command line: a run writes its history and picture; bad arguments get one line."""

from pathlib import Path

import pytest

from sandbox.cli import main


def test_a_run_reports_and_writes_history_and_picture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "run",
            "RollingRestartStateMachine",
            "--fleet",
            "size=3",
            "--speed",  # from before the virtual clock: accepted, ignored, noted
            "500",
            "--quiet",
            "--out",
            str(tmp_path),
            "--input",
            '{"batchSize": 1, "health": {"port": 8080}, "alarms": {"namePrefixes": ["web-"]}}',
        ]
    )

    out, err = capsys.readouterr()
    assert code == 0
    assert "--speed is ignored" in err
    assert "SUCCEEDED" in out
    assert "floor 2: held" in out
    assert "Requests dropped: 0" in out
    assert "Alarms and rules: all 10 as before the run" in out  # the tier's 8 and the stack's alarm and rule
    assert (tmp_path / "history.json").stat().st_size > 0
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_patch_workflow_runs_with_live_progress_its_approval_and_the_picture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's second example, on a small fleet: --approve answers the one approval mail."""
    demo = Path(__file__).parents[2] / "events" / "patch_tier" / "demo.json"
    code = main(
        ["run", "PatchTierStateMachine", "--input", str(demo), "--approve", "--fleet", "size=4", "--out", str(tmp_path)]
    )

    out, _ = capsys.readouterr()
    assert code == 0, out
    assert "approved (the approve link of the mail)" in out
    assert "SUCCEEDED" in out and "Requests dropped: 0" in out
    assert "opsflow patching: 4 of 4 instances compliant" in (tmp_path / "last-notification.txt").read_text("utf-8")
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failed_execution_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "run",
            "RollingRestartStateMachine",
            "--fleet",
            "2",
            "--quiet",
            "--out",
            str(tmp_path),
            "--input",
            '{"batchSize": 2}',
        ]
    )

    assert code == 1
    assert "UnsafeBatchSizeError" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fleet", "size=ten"], "--fleet: size must be a int"),
        (["--fleet", "colour=blue"], "--fleet: unknown key 'colour'"),
        (["--input", "{not json"], "--input: not valid JSON"),
        (["--input", "missing-file.json"], "neither a file nor JSON"),
        (["--fault", "never_ready:99"], "instance number must be 1..12"),
        (["--fault", "explode:1"], "unknown kind 'explode'"),
    ],
)
def test_bad_arguments_get_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "RollingRestartStateMachine", *args])

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_an_unknown_state_machine_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "NoSuchStateMachine", "--fleet", "1"]) == 2
    assert "no state machine 'NoSuchStateMachine'" in capsys.readouterr().err
