"""opsflow's shared layer: what more than one Lambda function needs.

- observability: the one place that configures Powertools Logger, Tracer and Metrics
- settings: typed settings read once from the environment
- clients: lazily created, injectable AWS clients and HTTP session
- errors: the error classes the state machines match on by name
- validation: turning an event into a typed model, or a clear InvalidInputError
"""
