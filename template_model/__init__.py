"""template.yaml as data: loaded as CloudFormation reads it, its intrinsics resolved.

Neutral ground for the sandbox, the tools and the tests: imports neither moto nor the sandbox.
"""

from template_model.cloudformation import ROOT, TEMPLATE_PATH, Stack, TemplateError, load_template

__all__ = ["ROOT", "TEMPLATE_PATH", "Stack", "TemplateError", "load_template"]
