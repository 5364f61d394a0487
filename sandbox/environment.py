"""The process as a sandbox needs it: fake credentials in one region, moto's mock, quiet loggers.

Everything it changes (environment variables, logger levels, boto3's default session, the shared
layer's cached clients) is put back on close, so a test after a sandbox sees the process it had.
"""

import logging
import os
from typing import Any

import boto3
from moto import mock_aws

from opsflow import clients

REGION = "eu-west-1"
ACCOUNT = "123456789012"
# Caught errors are part of the workflows; moto and the tracer would log each with a traceback.
QUIET_LOGGERS = ("moto.stepfunctions", "aws_lambda_powertools.tracing")


def client(service: str) -> Any:
    """A boto3 client of the sandbox's region (inside a started environment: answered by moto)."""
    return boto3.client(service, region_name=REGION)


class AwsEnvironment:
    """Started, the process talks to moto as a caller in REGION; closed, it is as it was."""

    def __init__(self) -> None:
        self._started = False

    def start(self) -> None:
        self._saved_env = dict(os.environ)
        os.environ.update(
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_SESSION_TOKEN="testing",
        )
        os.environ.pop("AWS_PROFILE", None)
        self._quieted = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        self._started = True
        boto3.setup_default_session(region_name=REGION)
        clients.reset()

    def stop_mock(self) -> None:
        """moto answers no more calls (the rest of the process is restored by :meth:`close`)."""
        if self._started:
            self._mock.stop()
            self._started = False

    def close(self) -> None:
        self.stop_mock()
        clients.reset()
        os.environ.clear()
        os.environ.update(self._saved_env)
        for name, level in self._quieted.items():
            logging.getLogger(name).setLevel(level)
