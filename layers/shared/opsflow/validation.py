"""Turn an event into a typed model, or raise InvalidInputError naming every bad field."""

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsflow.errors import InvalidInputError

# An EC2 instance id: "i-" and 8 (older instances) or 17 hexadecimal digits.
INSTANCE_ID_PATTERN = r"^i-[0-9a-f]{8,17}$"
InstanceId = Annotated[str, Field(pattern=INSTANCE_ID_PATTERN)]


def describe_validation_error(exc: ValidationError) -> str:
    """``field.sub: problem; other: problem`` -- short enough for a Step Functions Cause."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_event[ModelT: BaseModel](model: type[ModelT], event: Mapping[str, Any] | Any) -> ModelT:
    """Validate ``event`` against ``model``; a malformed event raises InvalidInputError."""
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        raise InvalidInputError(describe_validation_error(exc)) from exc


class ExecutionEvent(BaseModel):
    """What a workflow's first state passes its function: the execution input (any JSON, validated
    next) and the execution's ARN, ``{"input.$": "$", "executionArn.$": "$$.Execution.Id"}``."""

    model_config = ConfigDict(extra="forbid")

    input: Any
    execution_arn: str = Field(alias="executionArn", min_length=1)
