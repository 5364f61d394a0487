"""IAM's decision on one request, from the identity-based policies of the principal that makes it.

The logic is AWS's, as documented in the IAM User Guide:

- Policy evaluation logic (reference_policies_evaluation-logic.html, and "The difference between
  explicit and implicit denies", reference_policies_evaluation-logic_AccessPolicyLanguage_Interplay.html):
  a request is denied by default; an applicable ``Allow`` statement allows it, unless an applicable
  ``Deny`` statement denies it explicitly: "the Deny statement trumps the Allow statement".
- Action, NotAction, Resource and NotResource (reference_policies_elements_*.html): action names are
  case-insensitive, resource ARNs case-sensitive; ``*`` and ``?`` are wildcards, within an ARN's
  colon-separated segments, except that a ``*`` ending a segment "can expand to match beyond the
  colon boundaries". A resource of ``*`` (an action without resource-level permissions) is matched
  only by ``"Resource": "*"``. ArnLike compares the six parts of the ARN one by one.
- Condition operators (reference_policies_elements_condition_operators.html): several operators, or
  several keys under one operator, must all hold (AND); several values for one key: any of them (OR).
  "If the key that you specify in a policy condition is not present in the request context, the
  values do not match and the condition is false. If the policy condition requires that the key is
  not matched, such as StringNotLike or ArnNotLike, and the right key is not present, the condition
  is true." ``...IfExists`` is true when the key is absent; ``Null`` tests presence.
  ``ForAllValues:`` holds when every request value matches (and when there is none), ``ForAnyValue:``
  when at least one does (reference_policies_condition-single-vs-multi-valued-context-keys.html).
  Condition key names are case-insensitive.
- Policy variables (reference_policies_variables.html): ``${aws:username}``-style variables are
  replaced with request values in the Resource element and in condition *values*, and only in
  policies of Version 2012-10-17. Nothing is replaced in condition *keys*: a key such as
  ``aws:ResourceTag/${RestartTagKey}`` names a tag literally called ``${RestartTagKey}``, which no
  resource has (tag keys cannot contain ``$``, ``{`` or ``}``).

Supported condition operators: String*, Numeric*, Bool, Arn*, Null, each with ``IfExists`` and the
``ForAnyValue:``/``ForAllValues:`` prefixes. Any other operator (Date*, IpAddress, BinaryEquals...)
raises :class:`UnsupportedPolicy`: a policy the sandbox cannot evaluate must not pass silently.

Only identity-based policies are evaluated here: no resource-based policies, permissions boundaries,
session policies or SCPs. This module knows nothing of moto or boto3.
"""

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ContextValue = str | Sequence[str]


class UnsupportedPolicy(ValueError):
    """The policy uses something this evaluator does not implement (named in the message)."""


@dataclass(frozen=True)
class Request:
    """What IAM evaluates: one action on one resource, with the request context's condition keys."""

    action: str  # "ec2:RebootInstances"
    resource: str  # an ARN, or "*" for actions without resource-level permissions
    context: Mapping[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    explicit_deny: bool = False
    statement: str | None = None  # the Sid (or position) of the statement that decided, if any

    def denial(self, principal: str, request: Request) -> str:
        """AWS's access-denied message for this request (troubleshoot_access-denied.html)."""
        on = f" on resource: {request.resource}" if request.resource != "*" else ""
        why = (
            "with an explicit deny in an identity-based policy"
            if self.explicit_deny
            else f"because no identity-based policy allows the {request.action} action"
        )
        return f"User: {principal} is not authorized to perform: {request.action}{on} {why}"


def evaluate(policies: Iterable[Mapping[str, Any]], request: Request) -> Decision:
    """Explicit deny wins; otherwise an allowing statement is needed; otherwise denied."""
    context = {
        key.lower(): ([value] if isinstance(value, str) else list(value)) for key, value in request.context.items()
    }
    allowed_by: str | None = None
    for p, policy in enumerate(policies):
        version = str(policy.get("Version", "2008-10-17"))
        for s, statement in enumerate(_statements(policy)):
            if not _applies(statement, request, context, version):
                continue
            sid = str(statement.get("Sid") or f"policy {p} statement {s}")
            effect = statement.get("Effect")
            if effect == "Deny":
                return Decision(False, explicit_deny=True, statement=sid)
            if effect != "Allow":
                raise UnsupportedPolicy(f"statement {sid}: Effect must be Allow or Deny, not {effect!r}")
            allowed_by = allowed_by or sid
    return Decision(allowed_by is not None, statement=allowed_by)


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = policy.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _applies(statement: Mapping[str, Any], request: Request, context: dict[str, list[str]], version: str) -> bool:
    if "Action" in statement:
        if not any(_action_matches(p, request.action) for p in _listed(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(_action_matches(p, request.action) for p in _listed(statement["NotAction"])):
            return False
    else:
        raise UnsupportedPolicy(f"statement without Action or NotAction: {dict(statement)}")
    variables = version == "2012-10-17"
    if "Resource" in statement:
        if not any(_resource_matches(p, request.resource, context, variables) for p in _listed(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(_resource_matches(p, request.resource, context, variables) for p in _listed(statement["NotResource"])):
            return False
    else:
        raise UnsupportedPolicy(f"statement without Resource or NotResource: {dict(statement)}")
    return all(
        _condition_holds(operator, key, _listed(values), context, variables)
        for operator, block in statement.get("Condition", {}).items()
        for key, values in block.items()
    )


# -- wildcards -------------------------------------------------------------------------------
@lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool, arn_segments: bool = False) -> re.Pattern[str]:
    """``*`` any characters, ``?`` one. In a Resource ARN, a ``*`` inside a colon-separated segment stays
    in it, and a ``*`` that ends a segment may reach past its colons ("Using wildcards in resource ARNs")."""
    regex = []
    for i, c in enumerate(pattern):
        if c == "*":
            ends_segment = i + 1 == len(pattern) or pattern[i + 1] == ":"
            regex.append(".*" if ends_segment or not arn_segments else "[^:]*")
        elif c == "?":
            regex.append("[^:]" if arn_segments else ".")
        else:
            regex.append(re.escape(c))
    return re.compile("".join(regex), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _wildcard(pattern, ignore_case).fullmatch(value) is not None


def _action_matches(pattern: Any, action: str) -> bool:
    return _like(str(pattern), action, ignore_case=True)


def _arn_like(pattern: str, arn: str) -> bool:
    """ArnLike/ArnEquals: each of the six colon-separated parts matches on its own."""
    if pattern == "*":
        return True
    pattern_parts, arn_parts = pattern.split(":", 5), arn.split(":", 5)
    if len(pattern_parts) != len(arn_parts):
        return False
    return all(_like(p, a) for p, a in zip(pattern_parts, arn_parts, strict=True))


def _resource_matches(pattern: Any, resource: str, context: dict[str, list[str]], variables: bool) -> bool:
    text = _substitute(str(pattern), context) if variables else str(pattern)
    if text is None:
        return False
    if resource == "*":  # an action without resource-level permissions: only "*" names it
        return text == "*"
    return _wildcard(text, False, arn_segments=True).fullmatch(resource) is not None


# -- policy variables ------------------------------------------------------------------------
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


def _substitute(text: str, context: dict[str, list[str]]) -> str | None:
    """``${key}`` -> the request's single value for key (``${key, 'default'}`` if absent); None if unresolvable."""
    unresolved = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unresolved
        name, _, default = match.group(1).partition(",")
        name = name.strip()
        if name in _SPECIAL:
            return _SPECIAL[name]
        values = context.get(name.lower())
        if values is not None and len(values) == 1:
            return values[0]
        default = default.strip()
        if default.startswith("'") and default.endswith("'") and len(default) >= 2:
            return default[1:-1]
        unresolved = True
        return ""

    out = _VARIABLE.sub(replace, text)
    return None if unresolved else out


# -- conditions ------------------------------------------------------------------------------
def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def match(value: str, pattern: str) -> bool:
        a, b = _number(value), _number(pattern)
        return a is not None and b is not None and compare(a, b)

    return match


# Positive operators: (request value, policy value) -> match. Negated operators are their negation.
_MATCHERS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda v, p: v == p,
    "StringEqualsIgnoreCase": lambda v, p: v.lower() == p.lower(),
    "StringLike": lambda v, p: _like(p, v),
    "NumericEquals": _numeric(lambda a, b: a == b),
    "NumericLessThan": _numeric(lambda a, b: a < b),
    "NumericLessThanEquals": _numeric(lambda a, b: a <= b),
    "NumericGreaterThan": _numeric(lambda a, b: a > b),
    "NumericGreaterThanEquals": _numeric(lambda a, b: a >= b),
    "Bool": lambda v, p: v.lower() == p.lower(),
    "ArnEquals": lambda v, p: _arn_like(p, v),  # AWS: ArnEquals and ArnLike behave the same
    "ArnLike": lambda v, p: _arn_like(p, v),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}
_VARIABLES_IN_VALUES = ("String", "Arn")


def _policy_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _condition_holds(
    operator: str, key: str, policy_values: list[Any], context: dict[str, list[str]], variables: bool
) -> bool:
    qualifier, _, name = operator.rpartition(":")
    if qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise UnsupportedPolicy(f"condition operator {operator!r}")
    if_exists = name.endswith("IfExists")
    name = name.removesuffix("IfExists")
    request_values = context.get(key.lower())  # the key itself is never a policy variable
    if name == "Null":
        if qualifier or if_exists:
            raise UnsupportedPolicy(f"condition operator {operator!r}")
        return all((request_values is None) == (_policy_value(p).lower() == "true") for p in policy_values)
    negated = name in _NEGATED
    matcher = _MATCHERS.get(_NEGATED.get(name, name))
    if matcher is None:
        raise UnsupportedPolicy(f"condition operator {operator!r} (supported: {', '.join(sorted(_MATCHERS))})")
    if request_values is None or (qualifier and not request_values):
        if if_exists:
            return True
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return negated
    patterns = [_policy_value(p) for p in policy_values]
    if variables and name.startswith(_VARIABLES_IN_VALUES):
        patterns = [t for t in (_substitute(p, context) for p in patterns) if t is not None]

    def one(value: str) -> bool:
        hit = any(matcher(value, p) for p in patterns)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in request_values)
    if qualifier == "ForAnyValue":
        return any(one(v) for v in request_values)
    if negated:  # a single-valued negated test: no request value matches any policy value
        return all(one(v) for v in request_values)
    return any(one(v) for v in request_values)
