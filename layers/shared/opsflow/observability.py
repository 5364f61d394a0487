"""The one place that sets up Powertools Logger, Tracer and Metrics for every function.

Configuration comes from the POWERTOOLS_* environment variables set in template.yaml Globals
(service name, metrics namespace, log level), not from constructor arguments, so the template is the
single source of truth.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
