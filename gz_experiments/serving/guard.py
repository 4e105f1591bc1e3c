"""Checks on a request's raw body inside `mlflow models serve`, before MLflow parses it.

MLflow's scoring server answers a JSON body nested 1,000+ deep with a 500 (a RecursionError in
its parser), echoes an invalid body back in full in its error, and drops request parameters its
signature does not name (a warning in the server log, a 200 to the client). The model cannot
change the server's app, but the app calls the module function `scoring_server.invocations` by
name for every request; `install` wraps it (once, in the server process only) so that:

- a body larger than `max_body_bytes` is a 400 naming the limit (the server has already read
  it into memory by then: only a proxy in front can refuse it unread, see the README);
- JSON nested too deeply, or not JSON at all, is a 400 of one short line, never an echo;
- a parameter the model does not take is a 400 listing the ones it does;
- otherwise the parsed body goes on to MLflow as a dict (MLflow takes a dict as already parsed),
  so the JSON is parsed once.
"""

from __future__ import annotations

import json
from collections.abc import Callable

JSON_TYPE = "application/json"


def install(max_body_bytes: int, accepted_params: tuple[str, ...]) -> None:
    """Wrap MLflow's scoring-server `invocations` (idempotent)."""
    from mlflow.pyfunc import scoring_server

    original = scoring_server.invocations
    if getattr(original, "gz_guarded", False):
        return
    scoring_server.invocations = guarded(original, max_body_bytes, accepted_params)


def guarded(original: Callable, max_body_bytes: int, accepted: tuple[str, ...]) -> Callable:
    def invocations(data, content_type, model, input_schema):
        refusal, parsed = check_body(data, content_type, max_body_bytes, accepted)
        if refusal:
            return _bad_request(refusal)
        return original(data if parsed is None else parsed, content_type, model, input_schema)

    invocations.gz_guarded = True
    return invocations


def check_body(
    data: bytes | str, content_type: str | None, max_body_bytes: int, accepted: tuple[str, ...]
) -> tuple[str, dict | None]:
    """(why the body is refused or "", the parsed JSON object when there is one)."""
    if len(data) > max_body_bytes:
        return (
            f"the request body is {len(data):,} bytes, more than {max_body_bytes:,} "
            f"(4/3 x GZ_SERVE_MAX_REQUEST_BYTES + 1 MiB, for base64); split the request"
        ), None
    if (content_type or "").split(";")[0].strip().lower() != JSON_TYPE:
        return "", None
    try:
        parsed = json.loads(data)
    except RecursionError:
        return (
            "the JSON body is nested too deeply; send a dataframe_split or dataframe_records",
            None,
        )
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: one line, no echo
        return f"the body is not valid JSON ({str(exc)[:120]})", None
    if not isinstance(parsed, dict):
        return "", None
    params = parsed.get("params")
    if isinstance(params, dict):
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            return f"unknown parameter(s) {unknown}; accepted: {list(accepted)}", None
    return "", parsed


def _bad_request(message: str):
    from mlflow.pyfunc.scoring_server import InvocationsResponse

    body = json.dumps({"error_code": "BAD_REQUEST", "message": message})
    return InvocationsResponse(response=body, status=400, mimetype=JSON_TYPE)
