"""Typed settings read once from the environment.

Each function declares a pydantic model of the environment variables it needs (field aliases are the
variable names) and loads it once, at cold start, with :func:`load_settings`. A missing or malformed
variable fails the cold start with a message naming the variable, instead of a KeyError deep in logic.
"""

import functools
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from opsflow.errors import OpsflowError


class SettingsError(OpsflowError):
    """The function's environment is missing or has a malformed variable (a deployment error)."""


class EnvSettings(BaseModel):
    """Base for settings models: immutable, unknown variables ignored, fields by alias.

    Built when first loaded, not when defined: a function loads only its own Settings, so the shared
    bases below, which every function imports, never cost their schema build at cold start.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)


def load_settings[SettingsT: EnvSettings](
    model: type[SettingsT], environ: Mapping[str, str] | None = None
) -> SettingsT:
    """Validate ``environ`` (default: ``os.environ``) against ``model``."""
    env = os.environ if environ is None else environ
    try:
        return model.model_validate(dict(env))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise SettingsError(f"invalid function configuration: {problems}") from exc


def cached_settings[SettingsT: EnvSettings](model: type[SettingsT]) -> "functools._lru_cache_wrapper[SettingsT]":
    """A function returning ``model`` loaded once (at first use, so tests can set the environment first).

    ``.cache_clear()`` forgets it (tests).
    """
    return functools.cache(lambda: load_settings(model))


# Variables several functions share (template.yaml Globals).
class RunTableSettings(EnvSettings):
    table_name: str = Field(alias="TABLE_NAME", min_length=3)


class NotificationSettings(EnvSettings):
    topic_arn: str = Field(alias="TOPIC_ARN", min_length=20)


class BucketSettings(EnvSettings):
    bucket_name: str = Field(alias="BUCKET_NAME", min_length=3)


class NeverMuteSettings(EnvSettings):
    """The stack's own alarm and safety-net rule, which a restart never mutes whatever it selects.

    Comma-separated exact names; template.yaml passes the names it gives those resources. Required: a
    deployment that forgot them must fail at cold start, not silently allow muting the safety net.
    """

    never_mute_alarm_names: frozenset[str] = Field(alias="NEVER_MUTE_ALARM_NAMES", min_length=1)
    never_mute_rule_names: frozenset[str] = Field(alias="NEVER_MUTE_RULE_NAMES", min_length=1)

    @field_validator("never_mute_alarm_names", "never_mute_rule_names", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(name.strip() for name in value.split(",") if name.strip())
        return value
