"""What a rolling restart is asked to do: the execution input and the stack's defaults, validated.

The input models refuse anything malformed with a message naming the field (opsflow.validation);
the decisions on valid input are opsflow.restart_plan's.
"""

from typing import Annotated, Literal

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator
from pydantic.alias_generators import to_camel

from opsflow import resume, watch
from opsflow.muting import Selector
from opsflow.settings import NeverMuteSettings, RunTableSettings
from opsflow.validation import InstanceId

TARGET_GROUP_ARN = (
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$"
)
LOAD_BALANCER_ARN = (
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:loadbalancer/app/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$"
)
BATCH_SIZE = r"^([1-9][0-9]{0,3}|([1-9][0-9]?|100)%)$"
DOCUMENT_NAME = r"^[a-zA-Z0-9_\-.]{3,128}$"
# Patching: Patch Manager's document installs what the baseline approves and reboots only if needed.
PATCH_DOCUMENT = "AWS-RunPatchBaseline"
PATCH_PARAMETERS = {"Operation": ["Install"], "RebootOption": ["RebootIfNeeded"]}


class PlannerSettings(RunTableSettings, NeverMuteSettings):
    """The stack's configuration of the planner: defaults for what the input leaves out, and limits."""

    target_group_arn: str = Field(default="", alias="TARGET_GROUP_ARN")
    # More target groups the stack may restart, comma-separated (AllowedTargetGroupArns).
    allowed_target_group_arns: str = Field(default="", alias="ALLOWED_TARGET_GROUP_ARNS")

    def allowed(self) -> set[str]:
        """The target groups this stack may change; empty: any (its IAM role is not scoped)."""
        listed = [a.strip() for a in self.allowed_target_group_arns.split(",") if a.strip()]
        return set(listed) | ({self.target_group_arn} if self.target_group_arn else set())

    restart_tag_key: str = Field(alias="RESTART_TAG_KEY", min_length=1)
    restart_tag_value: str = Field(alias="RESTART_TAG_VALUE")
    batch_size: str = Field(alias="DEFAULT_BATCH_SIZE", pattern=BATCH_SIZE)
    error_budget: int = Field(alias="DEFAULT_ERROR_BUDGET", ge=1)
    expected_boot_seconds: int = Field(alias="EXPECTED_BOOT_SECONDS", ge=0)
    health_port: int = Field(alias="HEALTH_PORT")
    health_path: str = Field(alias="HEALTH_PATH")
    health_expected_status: int = Field(alias="HEALTH_EXPECTED_STATUS")
    health_timeout_seconds: float = Field(alias="HEALTH_TIMEOUT_SECONDS")
    alarm_name_prefix: str = Field(default="", alias="ALARM_NAME_PREFIX")
    rule_name_prefix: str = Field(default="", alias="RULE_NAME_PREFIX")
    approval_timeout_seconds: int = Field(alias="APPROVAL_TIMEOUT_SECONDS", ge=60)
    allowed_documents: str = Field(default="AWS-RunPatchBaseline", alias="ALLOWED_COMMAND_DOCUMENTS")
    # Where the probing functions run: empty when the stack has no VPC settings (they cannot reach a private IP).
    probe_vpc_id: str = Field(default="", alias="HEALTH_PROBE_VPC_ID")
    probe_security_group_id: str = Field(default="", alias="HEALTH_PROBE_SECURITY_GROUP_ID")


class CamelModel(BaseModel):
    """Immutable, no unknown field, camelCase in JSON (snake_case in Python)."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=AliasGenerator(to_camel), populate_by_name=True, frozen=True
    )


class HealthOverride(CamelModel):
    port: Annotated[StrictInt, Field(ge=1, le=65535)] | None = None
    path: Annotated[str, Field(pattern=r"^/[^\s]*$", max_length=512)] | None = None
    expected_status: Annotated[StrictInt, Field(ge=100, le=599)] | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=30)] | None = None


class CommandRequest(CamelModel):
    """The SSM command of the ``command`` action; defaults: AWS-RunPatchBaseline, Install, RebootIfNeeded."""

    document_name: Annotated[str, Field(pattern=DOCUMENT_NAME)] = PATCH_DOCUMENT
    parameters: (
        Annotated[dict[Annotated[str, Field(min_length=1, max_length=64)], list[str]], Field(max_length=50)] | None
    ) = None
    timeout_seconds: Annotated[StrictInt, Field(ge=30, le=172800)] = 600
    output_s3_bucket_name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")] | None = None
    output_s3_key_prefix: Annotated[str, Field(max_length=500)] | None = None


class PreviewMail(CamelModel):
    """The patch preview the approval mail carries: its text in the stack's bucket (the patch workflow)."""

    findings: Annotated[str, Field(min_length=1, max_length=200)]
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    key: Annotated[str, Field(pattern=r"^patch-preview/\S{1,1000}$")]


class RestartRequest(CamelModel):
    """The execution input. Every field is optional; defaults come from the template parameters."""

    target_group_arn: Annotated[str, Field(pattern=TARGET_GROUP_ARN)] | None = None
    # A tier of several target groups (two listeners, two load balancers), or a load balancer's groups.
    target_group_arns: (
        Annotated[list[Annotated[str, Field(pattern=TARGET_GROUP_ARN)]], Field(min_length=1, max_length=20)] | None
    ) = None
    load_balancer_arn: Annotated[str, Field(pattern=LOAD_BALANCER_ARN)] | None = None
    one_zone_at_a_time: StrictBool = False
    batch_size: StrictInt | Annotated[str, Field(pattern=BATCH_SIZE)] | None = None
    instance_ids: Annotated[list[InstanceId], Field(min_length=1, max_length=1000)] | None = None
    alarms: Selector | None = None
    rules: Selector | None = None
    health: HealthOverride | None = None
    expected_boot_seconds: Annotated[StrictInt, Field(ge=0, le=3600)] | None = None
    error_budget: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None
    dry_run: StrictBool = False
    require_approval: StrictBool = False
    approval_timeout_seconds: Annotated[StrictInt, Field(ge=60, le=604800)] | None = None
    stop_on_alarms: watch.WatchSelector | None = None
    resume_from: Annotated[str, Field(pattern=resume.EXECUTION_ARN)] | None = None
    action: Literal["reboot", "command"] = "reboot"
    command: CommandRequest | None = None
    note: Annotated[str, Field(max_length=2000)] = ""  # shown in the approval mail
    preview: PreviewMail | None = None  # the approval mail is this patch preview with its links

    @field_validator("batch_size")
    @classmethod
    def _positive(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 1 <= value <= 1000:
            raise ValueError("must be 1..1000 instances or a percentage like '25%'")
        return value

    @field_validator("instance_ids")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("instance ids must be unique")
        return value
