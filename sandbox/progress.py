"""Live progress of an execution in the sandbox, and the report at its end."""

import json
import math
import re
import time
from pathlib import Path
from urllib.parse import urlparse

from sandbox.runtime import ExecutionResult, Sandbox
from sandbox.scheduler import Stalled
from sandbox.timeline import render

PLAN_STATE = "Validate the input and plan the restart"
BUSY_LISTED = 6  # beyond this many instances out of service, progress shows counts per phase
STEP = 10.0  # simulated seconds between two looks at the fleet


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


class Progress:
    def __init__(
        self,
        sb: Sandbox,
        execution_arn: str,
        quiet: bool = False,
        stop_after: float | None = None,
        approve: bool = False,
    ) -> None:
        self.sb = sb
        self.arn = execution_arn
        self.quiet = quiet
        self.stop_after = stop_after
        self.approve = approve  # answer an approval mail with its approve link, as the person in charge would
        self.approved = False
        self.started = sb.clock.now()

    def _approve_if_asked(self) -> None:
        mails = [c.params for c in self.sb.bridge.calls_to("sns", "Publish") if not c.failed]
        asked = next((m for m in mails if m.get("Subject", "").startswith("opsflow: approve")), None)
        found = re.search(r"^Approve: (\S+)$", asked["Message"], re.MULTILINE) if asked else None
        if found:
            self.sb.invoke_url("ApprovalVerifierFunction", "POST", body=urlparse(found.group(1)).query)
            self.approved = True
            if not self.quiet:
                print(f"+{_clock(self.sb.clock.now() - self.started)}  approved (the approve link of the mail)")

    def line(self, now: float) -> str:
        fleet = self.sb.fleet
        busy = {fleet.names[i]: fleet.phase(i, now) for i in fleet.instances}
        busy = {name: phase for name, phase in sorted(busy.items()) if phase != "in service"}
        if len(busy) > BUSY_LISTED:
            counts: dict[str, int] = {}
            for phase in busy.values():
                counts[phase] = counts.get(phase, 0) + 1
            detail = ", ".join(f"{n} {phase}" for phase, n in sorted(counts.items()))
        else:
            detail = ", ".join(f"{name} {phase}" for name, phase in busy.items())
        return f"serving {fleet.serving(now)}/{len(fleet.instances)}  {detail or 'all in service'}"

    def follow(self, timeout: float) -> ExecutionResult:
        """Run the execution to its end, printing what changed every STEP simulated seconds."""
        deadline = time.monotonic() + timeout
        stop_at = None if self.stop_after is None else self.started + self.stop_after
        last = ""
        while self.sb.running(self.arn):
            if self.approve and not self.approved:
                self._approve_if_asked()
            now = self.sb.clock.now()
            line = self.line(now)
            if line != last and not self.quiet:
                print(f"+{_clock(now - self.started)}  {line}", flush=True)
                last = line
            if stop_at is not None and now >= stop_at:
                assert self.stop_after is not None
                return self._stop(f"stopped by the operator after {duration(self.stop_after)}", deadline)
            target = now + STEP if stop_at is None else min(now + STEP, stop_at)
            try:
                self.sb.run_until(lambda: not self.sb.running(self.arn), at=target, timeout=deadline - time.monotonic())
            except Stalled as exc:
                return self._stop(f"the sandbox stalled: {str(exc).splitlines()[0]}", deadline)
            except TimeoutError:
                return self._stop("the sandbox's wall-clock timeout", deadline)
        return self.sb.result(self.arn)

    def _stop(self, cause: str, deadline: float) -> ExecutionResult:
        self.sb.stop(self.arn, cause=cause)
        try:
            return self.sb.wait(self.arn, timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError:  # still unwinding (e.g. a task waiting for its token): report it as it is
            return self.sb.result(self.arn)

    def floor(self, result: ExecutionResult) -> int | None:
        for event in result.events:
            details = event.get("stateExitedEventDetails")
            if details and details["name"] == PLAN_STATE:
                output = json.loads(details.get("output") or "{}")
                floor = output.get("floor")
                return int(floor) if floor is not None else None
        return None

    def report(
        self, result: ExecutionResult, before: dict[str, str], after: dict[str, str], wall: float, out: Path
    ) -> str:
        sb, fleet = self.sb, self.sb.fleet
        start = result.events[0]["timestamp"].timestamp() if result.events else self.started
        end = result.events[-1]["timestamp"].timestamp() if result.events else sb.clock.now()
        floor = self.floor(result)
        # Settle: a failed instance taken out at the end still counts until the end of the picture.
        tl = fleet.timeline(start, end)
        lines = [
            "",
            f"{result.arn.rsplit(':', 1)[-1]}: {result.status} after {duration(end - start)} simulated "
            f"({wall:.1f} s wall)",
        ]
        if result.error:
            lines.append(f"  {result.error}: {result.cause}")
        if isinstance(result.output, dict):
            lines.append("  output: " + json.dumps(result.output)[:300])
        if fleet.events:  # the run touched the tier: how it served meanwhile
            floor_text = "" if floor is None else f" (floor {floor}: {'held' if tl.min_serving >= floor else 'BROKEN'})"
            lines.append(f"Serving capacity: at least {tl.min_serving} of {len(fleet.instances)}{floor_text}")
            lines.append(f"Requests dropped: {math.ceil(tl.dropped_requests)}")
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        if changed:
            lines.append(
                "Alarms and rules CHANGED by the run: "
                + "; ".join(f"{k}: {before.get(k)} -> {after.get(k)}" for k in changed)
            )
        else:
            lines.append(f"Alarms and rules: all {len(after)} as before the run")
        published = sb.bridge.calls_to("sns", "Publish")
        lines.append(f"Notifications published: {len(published)}")
        lines += [f"  - {c.params.get('Subject', '(no subject)')}" for c in published]
        out.mkdir(parents=True, exist_ok=True)
        history = out / "history.json"
        history.write_text(json.dumps(result.events, indent=1, default=str), encoding="utf-8")
        picture = None
        if fleet.events:
            title = f"{result.arn.rsplit(':', 1)[-1]}: {result.status}"
            picture = render(fleet, start, end, floor=floor, path=out / "timeline.png", title=title)
        if published:
            (out / "last-notification.txt").write_text(
                f"Subject: {published[-1].params.get('Subject')}\n\n{published[-1].params.get('Message')}",
                encoding="utf-8",
            )
        lines.append(f"History ({len(result.events)} events): {history}")
        if picture is not None:
            lines.append(f"Timeline picture: {picture}")
        if published:
            lines.append(f"Last notification: {out / 'last-notification.txt'}")
        return "\n".join(lines)
