"""``broker``: serve (embedded), api, worker, planner, simulate, db, keys, projects; submit, status, results, cancel,
label, schedules."""

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from broker.auth import DEFAULT_PROJECT, create_key, get_or_create_project
from broker.core import Core
from broker.db import make_engine, session_scope
from broker.migrate import upgrade
from broker.projects import KEEP, configure_project, month_to_date_cost, regions_of
from broker.settings import Settings
from cli.batches import register as register_batch_commands
from cli.compose import Processes
from cli.label import register as register_label_command
from cli.schedules import register as register_schedule_commands
from simulator import SimulatorConfig, SimulatorServer
from simulator import serve as serve_simulator
from simulator.serving import fast_config

app = typer.Typer(help="inference-broker: OpenAI-compatible batch inference in front of many providers.",
                  no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
projects_app = typer.Typer(help="Project policies: monthly budget, default regions.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(projects_app, name="projects")
console = Console(stderr=True)

Host = Annotated[str, typer.Option(help="Interface to listen on.")]
Port = Annotated[int, typer.Option(help="TCP port to listen on.")]
Threads = Annotated[int | None, typer.Option(help="Worker threads (each runs one chunk of lines at a time).")]


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per upstream call: noise, and CPU on the hot path


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _project_key(core: Core, project: str) -> str:
    with session_scope(core.engine) as session:
        return create_key(session, get_or_create_project(session, project).id)


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000, threads: Threads = None,
          no_auth: Annotated[bool, typer.Option("--no-auth", help="Accept any API key.")] = False,
          simulator: Annotated[bool, typer.Option(help="Run the demo provider on loopback.")] = True) -> None:
    """Everything in one process: API, planner, workers and (by default) the demo provider simulator."""
    _logging()
    settings = Settings(auth_disabled=no_auth) if no_auth else Settings()
    sim = SimulatorServer(port=settings.simulator_port).start() if simulator and not settings.providers_file else None
    core = Core.open(settings)
    procs = Processes(core)
    procs.start_workers(threads or settings.worker_threads)
    procs.start_planner()
    key = "any key (--no-auth)" if no_auth else _project_key(core, DEFAULT_PROJECT)
    console.print(f"[bold green]inference-broker[/] on http://{host}:{port}/v1  "
                  f"database={settings.database_url}  queue={'redis' if settings.redis_url else 'in-process'}")
    if sim is not None:
        console.print(f"demo provider (simulator) on {sim.base_url}; models: {', '.join(core.catalogue.model_names())}")
    console.print(f"API key: [bold]{key}[/]")
    try:
        uvicorn.Server(fast_config(procs.app(), host, port, log_level="info", quiet=False)).run()
    finally:
        procs.stop()
        if sim is not None:
            sim.stop()


@app.command()
def demo(lines: Annotated[int, typer.Option(help="Lines per batch.")] = 1000,
         data_dir: Annotated[Path | None, typer.Option(help="Keep the database and files here.")] = None) -> None:
    """Run the main job end to end on the embedded default: chat + embeddings batches via the openai SDK."""
    from cli.demo import run_demo

    if not run_demo(lines, data_dir, Console()):
        raise typer.Exit(1)


@app.command()
def api(host: Host = "0.0.0.0", port: Port = 8000) -> None:
    """The HTTP API only (production: run planner and workers as their own processes)."""
    _logging()
    procs = Processes(Core.open(Settings()))
    try:
        uvicorn.Server(fast_config(procs.app(), host, port, log_level="info", quiet=False)).run()
    finally:
        procs.stop()


@app.command()
def worker(threads: Threads = None) -> None:
    """Consume provider queues and call the upstreams (start as many as you like)."""
    _logging()
    settings = Settings()
    procs = Processes(Core.open(settings))
    procs.start_workers(threads or settings.worker_threads)
    console.print(f"worker started with {threads or settings.worker_threads} threads")
    try:
        _wait_for_signal()
    finally:
        procs.stop()


@app.command()
def planner() -> None:
    """Release work in priority order, take back expired leases, finish batches (run one or two)."""
    _logging()
    procs = Processes(Core.open(Settings()))
    procs.start_planner()
    try:
        _wait_for_signal()
    finally:
        procs.stop()


@app.command()
def simulate(host: Host = "127.0.0.1", port: Port = 8765,
             latency_ms: Annotated[float, typer.Option(help="Median latency (lognormal); 0 = none.")] = 0.0,
             rpm: Annotated[int | None, typer.Option(help="Requests per minute limit.")] = None,
             tpm: Annotated[int | None, typer.Option(help="Tokens per minute limit.")] = None,
             error_rate: Annotated[float, typer.Option(help="Fraction of requests that fail.")] = 0.0) -> None:
    """Run the OpenAI-compatible provider simulator in the foreground."""
    serve_simulator(host, port, SimulatorConfig(latency_median_ms=latency_ms, rpm=rpm, tpm=tpm,
                                                error_rate=error_rate))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema to the newest migration."""
    settings = Settings()
    upgrade(make_engine(settings.database_url))
    console.print("database is at the newest schema")


@keys_app.command("create")
def keys_create(project: Annotated[str, typer.Option(help="Project the key belongs to.")] = DEFAULT_PROJECT) -> None:
    """Create an API key for a project (created if new) and print it once."""
    core = Core.open(Settings())
    typer.echo(_project_key(core, project))


@projects_app.command("set")
def projects_set(
    project: Annotated[str, typer.Argument(help="Project name (created if new).")],
    monthly_budget_usd: Annotated[float | None, typer.Option(help="Stop dispatch once this month's cost reaches "
                                                             "it; open lines end as budget_exceeded.")] = None,
    no_budget: Annotated[bool, typer.Option("--no-budget", help="Remove the monthly budget.")] = False,
    regions: Annotated[str | None, typer.Option(help="Default constraints.regions, comma separated "
                                                "(e.g. eu); a batch's own constraints override it.")] = None,
    any_region: Annotated[bool, typer.Option("--any-region", help="Remove the default regions.")] = False,
) -> None:
    """Set a project's monthly budget and default regions."""
    core = Core.open(Settings())
    budget: float | None | object = None if no_budget else monthly_budget_usd if monthly_budget_usd is not None \
        else KEEP
    region_list: list[str] | None | object = None if any_region else \
        [r.strip() for r in regions.split(",") if r.strip()] if regions is not None else KEEP
    with session_scope(core.engine) as session:
        row = configure_project(session, project, budget, region_list)
        spent = month_to_date_cost(session, row.id)
        console.print(f"project {row.name}: monthly budget "
                      f"{'none' if row.monthly_budget_usd is None else f'${row.monthly_budget_usd:,.2f}'} "
                      f"(spent this month ${spent:,.4f}), default regions {', '.join(regions_of(row) or []) or 'any'}")


register_batch_commands(app)  # submit, status, results, cancel: a client of any broker, over HTTP
register_label_command(app)
register_schedule_commands(app)  # schedules create, list, pause, resume, delete: over HTTP too


if __name__ == "__main__":
    app()
