"""EventBridge rules in the Resource Groups Tagging API's GetResources, which moto 5.2.5 leaves out.

moto answers GetResources from every backend that lists its taggable resources. Its CloudWatch
backend lists alarms (``cloudwatch:alarm`` works), but its EventBridge backend lists event buses
only, so ``ResourceTypeFilters=["events:rule"]`` finds nothing. The sandbox answers those calls
itself, before moto sees them, from moto's EventBridge backend (rules on every bus and their tags),
with the API's tag filters (every filter must match; any of a filter's values) and its pagination
(``ResourcesPerPage`` up to 100, an opaque ``PaginationToken``, an empty token on the last page).
"""

import base64
import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from sandbox.moto_patches import DEFAULT_ACCOUNT, tag_filter, tagged_event_rules
from sandbox.patch_data import SimulatedApiError

SERVICE = "resource-groups-tagging-api"  # botocore's service id, as in event names
RULE_TYPE = "events:rule"
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 100


def answers(params: dict[str, Any]) -> bool:
    """A GetResources call the sandbox answers: EventBridge rules only (others are moto's)."""
    return params.get("ResourceTypeFilters") == [RULE_TYPE] and not params.get("ResourceARNList")


def _query_id(params: dict[str, Any]) -> str:
    wanted = {"TagFilters": params.get("TagFilters", []), "ResourceTypeFilters": params.get("ResourceTypeFilters")}
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]


def _token(offset: int, query: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset, "query": query}).encode()).decode()


def _offset(token: str, query: str) -> int:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        if decoded["query"] != query or not isinstance(decoded["offset"], int):
            raise ValueError(token)
    except (ValueError, KeyError, TypeError) as exc:
        raise SimulatedApiError("InvalidParameterException", f"PaginationToken {token!r} is not valid") from exc
    return int(decoded["offset"])


def get_resources(params: dict[str, Any], region: str, account: str = DEFAULT_ACCOUNT) -> dict[str, Any]:
    """GetResources' answer for ``ResourceTypeFilters=["events:rule"]``; SimulatedApiError as AWS would refuse."""
    per_page = params.get("ResourcesPerPage", DEFAULT_PER_PAGE)
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise SimulatedApiError("InvalidParameterException", f"ResourcesPerPage must be 1 to {MAX_PER_PAGE}")
    query = _query_id(params)
    start = _offset(params["PaginationToken"], query) if params.get("PaginationToken") else 0
    matches = tag_filter(params.get("TagFilters"))
    rules = [(arn, tags) for arn, tags in tagged_event_rules(account, region) if matches(tags)]
    page = rules[start : start + per_page]
    more = start + per_page < len(rules)
    return {
        "PaginationToken": _token(start + per_page, query) if more else "",
        "ResourceTagMappingList": [
            {"ResourceARN": arn, "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}
            for arn, tags in page
        ],
    }


def install(session: Any) -> Callable[[], None]:
    """Answer rule GetResources calls on ``session`` (tests without a sandbox); returns the uninstaller.

    The sandbox does not use this: its AwsBridge answers these calls after its injected faults.
    """
    from sandbox.aws_fleet import _OK, _error, _Response  # here: aws_fleet imports this module

    local = threading.local()

    def keep(params: dict[str, Any], **_: Any) -> None:
        local.params = params

    def answer(context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]] | None:
        params = getattr(local, "params", {})
        if not answers(params):
            return None
        try:
            return _Response(200), {**get_resources(params, context["client_region"]), "ResponseMetadata": _OK}
        except SimulatedApiError as exc:
            return _error(exc.code, str(exc))

    events: list[tuple[str, Callable[..., Any]]] = [
        (f"before-parameter-build.{SERVICE}.GetResources", keep),
        (f"before-call.{SERVICE}.GetResources", answer),
    ]
    for name, handler in events:
        session.events.register(name, handler)

    def uninstall() -> None:
        for name, handler in events:
            session.events.unregister(name, handler)

    return uninstall
