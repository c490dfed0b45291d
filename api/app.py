"""The FastAPI application factory."""

from fastapi import FastAPI

from api.context import ApiContext
from api.errors import install_error_handlers
from api.routes import batches, estimates, files, gateway, models, providers, schedules, usage, webhooks


def create_app(context: ApiContext) -> FastAPI:
    app = FastAPI(title="inference-broker", version="0.1.0",
                  description="OpenAI-compatible Files + Batches API in front of many model providers.")
    app.state.context = context
    install_error_handlers(app)
    # the gateway's routes first: they are the hot ones
    for module in (gateway, files, estimates, batches, models, providers, webhooks, schedules, usage):
        app.include_router(module.router)
    return app
