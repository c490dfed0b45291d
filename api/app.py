"""The FastAPI application factory."""

from fastapi import FastAPI

from api.context import ApiContext
from api.docs import docs_app
from api.errors import install_error_handlers
from api.guards import RefuseNul
from api.openapi import install_openapi
from api.request_id import RequestIdMiddleware
from api.routes import (
    audit_logs,
    batches,
    estimates,
    failures,
    files,
    gateway,
    metrics,
    models,
    org_keys,
    org_projects,
    overview,
    providers,
    schedules,
    usage,
    webhooks,
)
from api.routes.dashboard import install_dashboard


def create_app(context: ApiContext) -> FastAPI:
    app = docs_app(title="inference-broker", version="0.1.0",
                   description="OpenAI-compatible Files + Batches API in front of many model providers.")
    app.state.context = context
    app.add_middleware(gateway.GatewayLane)  # the innermost: its calls get the request id and the URL guard
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    app.add_middleware(RefuseNul)
    install_openapi(app)
    # the gateway's routes first: they are the hot ones
    for module in (gateway, files, estimates, batches, failures, models, providers, webhooks, schedules, usage,
                   org_projects, org_keys, audit_logs, overview, metrics):
        app.include_router(module.router)
    install_dashboard(app)
    return app
