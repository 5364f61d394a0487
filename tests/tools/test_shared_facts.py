"""Facts written both in template.yaml and in the code stay the same fact."""

import re

from opsflow.restart_request import BATCH_SIZE, TARGET_GROUP_ARN
from template_model import load_template


def parameter_pattern(name: str) -> str:
    return str(load_template()["Parameters"][name]["AllowedPattern"])


def unanchored(pattern: str) -> str:
    return pattern.removeprefix("^").removesuffix("$")


def test_the_stack_accepts_as_target_groups_exactly_what_the_planner_accepts() -> None:
    arn = unanchored(TARGET_GROUP_ARN)
    assert parameter_pattern("TargetGroupArn") == f"^$|^{arn}$"
    assert parameter_pattern("AllowedTargetGroupArns") == f"^$|^{arn}(,{arn}){{0,19}}$"


def test_the_stack_s_default_batch_size_is_one_the_planner_accepts_in_the_input() -> None:
    assert parameter_pattern("DefaultBatchSize") == BATCH_SIZE
    assert re.fullmatch(BATCH_SIZE, str(load_template()["Parameters"]["DefaultBatchSize"]["Default"]))
