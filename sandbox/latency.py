"""What AWS itself takes, in simulated seconds: the only time that passes in the sandbox besides waits.

Running Python costs no simulated time (sandbox/scheduler.py), so without this model a run would
be a sequence of instants. The figures, and where each comes from, are in docs/sandbox.md
("The latency model"); AWS documents almost none of them, so most are commonly measured orders of
magnitude, chosen round so that nobody mistakes them for measurements of this stack.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

# Per botocore service id (hyphenated), per call.
API_CALLS: Mapping[str, float] = {
    "dynamodb": 0.005,  # documented: "single-digit millisecond performance at any scale"
    "ec2": 0.100,  # control plane APIs: commonly ~100 ms (AWS's EBS direct API guide also assumes 100 ms)
    "elastic-load-balancing-v2": 0.100,
}


@dataclass(frozen=True)
class LatencyModel:
    state_transition: float = 0.050  # from one state to the next (each state entered, Map iterations included)
    lambda_invoke: float = 0.030  # a warm Lambda invoke: the Invoke call and the runtime's hand-over to the handler
    api_call: float = 0.030  # any other AWS API call (SQS, SNS, SSM, CloudWatch, EventBridge, S3, KMS...)
    api_calls: Mapping[str, float] = field(default_factory=lambda: dict(API_CALLS))

    def api(self, service: str, operation: str) -> float:
        """Latency of one call of ``service`` (botocore service id, e.g. ``elastic-load-balancing-v2``)."""
        if service == "lambda" and operation in ("Invoke", "InvokeAsync", "InvokeWithResponseStream"):
            return self.lambda_invoke
        return self.api_calls.get(service, self.api_call)


AWS = LatencyModel()
NONE = LatencyModel(state_transition=0.0, lambda_invoke=0.0, api_call=0.0, api_calls={})
