"""The short names people use for what an ARN names (pure: no AWS call, nothing imported)."""


def group_name(target_group_arn: str) -> str:
    """``...:targetgroup/web/0123456789abcdef`` -> ``web``."""
    name = target_group_arn.rsplit(":", 1)[-1]
    return name.split("/")[1] if name.count("/") == 2 else name


def execution_name(execution_arn: str) -> str:
    """``arn:aws:states:eu-west-1:123456789012:execution:opsflow-rolling-restart:run-1`` -> ``run-1``."""
    return execution_arn.rsplit(":", 1)[-1]
