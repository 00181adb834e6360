"""The REST API's URLs (upstream: http_rest_api_handler.cc's regexes).

    GET  /v1/models/{name}[/versions/{v} | /labels/{l}]            model status
    GET  /v1/models/{name}[/versions/{v} | /labels/{l}]/metadata   signature defs
    POST /v1/models/{name}[/versions/{v} | /labels/{l}]:predict | :classify | :regress

URLs match case-insensitively and names may be %-encoded, as upstream's
regexes and decoding allow. Beyond upstream, `GET /v1/health/live` and
`GET /v1/health/ready` answer load balancers.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse

from tensorflow_serving.apis import model_pb2
from tensorflow_serving.util import status

# Paths the REST handler owns (upstream's kPathRegex); others are not found.
PATH_REGEX = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_PREDICTION_REGEX = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_MODEL_STATUS_REGEX = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
HEALTH_LIVE_PATH = "/v1/health/live"
HEALTH_READY_PATH = "/v1/health/ready"

_MAX_INT64 = (1 << 63) - 1

# API labels of the metrics: upstream's REST method names, and names for the GETs.
PREDICT, CLASSIFY, REGRESS = "predict", "classify", "regress"
STATUS, METADATA = "status", "metadata"


@dataclasses.dataclass(frozen=True)
class Route:
    """What a request path asks for; `error` when it asks for nothing we serve."""

    api: str = ""
    model_name: str = ""
    version: int | None = None
    label: str | None = None
    error: status.ServingError | None = None

    def model_spec(self) -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self.model_name)
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        return spec


def parse_route(http_method: str, path: str) -> Route:
    """Matches a request against the API's URLs (no model access: cheap, on the event loop)."""
    malformed = Route(error=status.invalid_argument(f"Malformed request: {http_method} {path}"))
    if http_method == "POST":
        match = _PREDICTION_REGEX.fullmatch(path)
        if match is None:
            return malformed
        name, version, label, api = match.groups()
        if api not in (PREDICT, CLASSIFY, REGRESS):
            return malformed  # the regex ignores case; upstream's dispatch does not
    elif http_method == "GET":
        match = _MODEL_STATUS_REGEX.fullmatch(path)
        if match is None:
            return malformed
        name, version, label, subresource = match.groups()
        # Like upstream, only a lower-case "metadata" selects the metadata API.
        api = METADATA if subresource == METADATA else STATUS
    else:
        return malformed
    name = urllib.parse.unquote(name) if name else ""
    label = urllib.parse.unquote(label) if label else None
    if version is not None:
        number = int(version)
        if number > _MAX_INT64:
            return Route(
                api=api,
                model_name=name,
                error=status.invalid_argument(f"Failed to convert version: {version} to numeric."),
            )
        version = number
    return Route(api=api, model_name=name, version=version, label=label)
