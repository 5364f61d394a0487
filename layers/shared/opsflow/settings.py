"""Typed settings read once from the environment.

Each function declares a pydantic model of the environment variables it needs (field aliases are the
variable names) and loads it once, at cold start, with :func:`load_settings`. A missing or malformed
variable fails the cold start with a message naming the variable, instead of a KeyError deep in logic.
"""

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, ValidationError

from opsflow.errors import OpsflowError


class SettingsError(OpsflowError):
    """The function's environment is missing or has a malformed variable (a deployment error)."""


class EnvSettings(BaseModel):
    """Base for settings models: immutable, unknown variables ignored, fields by alias."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


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
