"""What the collector is asked: which read, its parameters, where its items go, and ``each``.

Checked before any call: a request that cannot be served (``each`` without the bucket, a limit on
``each``, a parameter given twice, a ``collect`` that is not JMESPath) is refused naming the field.
"""

from typing import Annotated, Any, Literal

import jmespath
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class EachValue(BaseModel):
    """Run the read once per value of ``parameter``."""

    model_config = ConfigDict(extra="forbid")

    parameter: str = Field(pattern=r"^[A-Z][A-Za-z0-9]{1,80}$")
    values: list[Annotated[str, Field(min_length=1, max_length=2048)]] = Field(min_length=1, max_length=500)


class CollectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(pattern=r"^[a-z0-9-]{2,40}$")
    operation: str = Field(pattern=r"^[A-Z][A-Za-z0-9]{2,80}$")
    parameters: dict[str, Any] = Field(default_factory=dict)
    collect: str = Field(min_length=1, max_length=200, description="JMESPath of the items in one page")
    limit: int | None = Field(default=None, ge=1, le=10_000_000)
    destination: Literal["auto", "s3"] = "auto"
    key: str | None = Field(default=None, pattern=r"^[\w!\-.*'()/]+$", max_length=900)
    label: str | None = Field(default=None, max_length=200, description="echoed back, to tell results apart")
    each: EachValue | None = None
    # The run that asks (its logs' correlation id); the collection does not depend on it.
    execution_arn: str = Field(default="", alias="executionArn", max_length=2048)

    @model_validator(mode="after")
    def _each_goes_to_the_bucket(self) -> "CollectRequest":
        if self.each is None:
            return self
        if self.destination != "s3":
            raise ValueError("each: needs destination s3 (its lines name their value; they are not inlined)")
        if self.limit is not None:
            raise ValueError("each: takes no limit (every value is read in full)")
        if self.each.parameter in self.parameters:
            raise ValueError(f"each: parameters already set {self.each.parameter}; give it only in each.values")
        return self

    @field_validator("collect")
    @classmethod
    def _jmespath(cls, value: str) -> str:
        try:
            jmespath.compile(value)
        except jmespath.exceptions.JMESPathError as exc:
            raise ValueError(f"not a JMESPath expression: {exc}") from exc
        return value
