"""A local HTTP endpoint playing API Gateway's HTTP API in front of the functions it invokes: the
webhook intake (``POST /webhooks/{source}/{connection}``) and, when given, the ledger webhook
function (``POST /ledger-webhooks/{ledger}/{connection}``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from invoice_sync_ops.local.lambda_runtime import LocalContext, http_api_event

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

# API Gateway HTTP APIs refuse bodies over 10 MiB before the function runs.
MAX_BODY = 10 * 1024 * 1024

WEBHOOK_ROUTE_KEY = "POST /webhooks/{source}/{connection}"
LEDGER_WEBHOOK_ROUTE_KEY = "POST /ledger-webhooks/{ledger}/{connection}"


@dataclass(frozen=True)
class _Route:
    route_key: str  # as template.yaml's event gives it, and the handler checks it
    handler: Handler
    function_name: str


class LocalHttpApi:
    """``handler`` serves the webhook route; ``ledger_handler``, when given, the ledger webhook
    route (without it that path is an unknown route, 404, as on a stack without the function)."""

    def __init__(self, handler: Handler, ledger_handler: Handler | None = None) -> None:
        self._endpoints = {"webhook": _Route(WEBHOOK_ROUTE_KEY, handler, "webhook-intake")}
        rules = [Rule("/webhooks/<source>/<connection>", methods=["POST"], endpoint="webhook")]
        if ledger_handler is not None:
            self._endpoints["ledger"] = _Route(LEDGER_WEBHOOK_ROUTE_KEY, ledger_handler, "ledger-events")
            rules.append(Rule("/ledger-webhooks/<ledger>/<connection>", methods=["POST"], endpoint="ledger"))
        self._routes = Map(rules)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        try:
            endpoint, arguments = self._routes.bind_to_environ(environ).match()
        except HTTPException as exc:
            # API Gateway's own answer for an unknown route.
            response = Response(
                '{"message":"Not Found"}', status=exc.code or 404, mimetype="application/json"
            )
            return response(environ, start_response)
        # A chunked body has no Content-Length: its size is known only once read. Werkzeug stops
        # reading it at the request's limit (without an error), so one byte more is read than
        # allowed, and a body that reaches it is too large.
        request.max_content_length = MAX_BODY + 1
        try:
            body = request.get_data()
        except RequestEntityTooLarge:
            body = None
        if body is None or len(body) > MAX_BODY:
            response = Response(
                '{"message":"Request Entity Too Large"}', status=413, mimetype="application/json"
            )
            return response(environ, start_response)
        # API Gateway (payload format 2.0) joins a header sent twice with commas; a dict of the
        # headers would keep one of them.
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        route = self._endpoints[str(endpoint)]
        event = http_api_event(
            "POST",
            request.path,
            route.route_key,
            {k: str(v) for k, v in arguments.items()},
            headers,
            body,
        )
        result = route.handler(event, LocalContext(route.function_name, timeout_seconds=10))
        response = Response(
            result.get("body", ""),
            status=int(result.get("statusCode", 200)),
            headers=result.get("headers", {}),
        )
        return response(environ, start_response)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = make_server(host, port, self.wsgi, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-http-api", daemon=True)
        self._thread.start()
        return f"http://{host}:{self._server.server_port}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
