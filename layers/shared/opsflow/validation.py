"""Turn an event into a typed model, or raise InvalidInputError naming every bad field."""

import functools
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args

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


@functools.cache  # one object per union: Powertools' parser keeps its TypeAdapter by the model's identity
def _tagged_union(tag: str, members: tuple[type[BaseModel], ...]) -> Any:
    return Annotated[Union[members], Field(discriminator=tag)]  # noqa: UP007 (a runtime tuple)


def tags_of(tag: str, members: tuple[type[BaseModel], ...]) -> list[str]:
    """The values of ``tag`` the members take (each member's field is a Literal)."""
    return [value for member in members for value in get_args(member.model_fields[tag].annotation)]


def parse_tagged(event: Any, *, tag: str, members: tuple[type[BaseModel], ...]) -> Any:
    """Validate ``event`` as the member its ``tag`` field names (a discriminated union, with Powertools'
    parser); InvalidInputError names the bad fields as the member's own, or the tags allowed."""
    from aws_lambda_powertools.utilities.parser import parse  # here: only the functions that take a union load it

    try:
        return parse(event=event, model=_tagged_union(tag, members))
    except ValidationError as exc:
        allowed = ", ".join(repr(t) for t in tags_of(tag, members))
        parts = []
        for err in exc.errors():
            if err["type"] == "union_tag_invalid":
                parts.append(f"{tag}: {err['ctx']['tag']!r} is not one of {allowed}")
            elif err["type"] == "union_tag_not_found":
                parts.append(f"{tag}: Field required (one of {allowed})")
            else:  # inside a member: its path without the tag, as when that member is parsed alone
                where = ".".join(str(p) for p in err["loc"][1:]) or "input"
                parts.append(f"{where}: {err['msg']}")
        raise InvalidInputError("; ".join(parts)) from exc
