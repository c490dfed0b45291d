"""``broker``: serve (embedded), api, worker, planner, simulate, doctor, config-docs, db; projects, keys, admin;
submit, status, results, retry, cancel, usage, label, schedules."""

import gc
import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import IntegrityError

from broker.bootstrap import admin_key_file, ensure_admin_key
from broker.core import Core
from broker.db import make_engine, session_scope
from broker.migrate import upgrade
from broker.settings import Settings
from cli.admin import register as register_admin_commands
from cli.batches import register as register_batch_commands
from cli.compose import Processes
from cli.config_docs import DOCS_PATH
from cli.config_docs import render as render_configuration
from cli.doctor import run_checks, split_problems
from cli.label import register as register_label_command
from cli.schedules import register as register_schedule_commands
from cli.startup import require_free_port, start_simulator, startup_errors
from simulator import SimulatorConfig
from simulator import serve as serve_simulator
from simulator.serving import fast_config

app = typer.Typer(help="inference-broker: OpenAI-compatible batch inference in front of many providers.",
                  no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)

Host = Annotated[str, typer.Option(help="Interface to listen on.")]
Port = Annotated[int, typer.Option(help="TCP port to listen on.")]
Threads = Annotated[int | None, typer.Option(help="Worker threads (each runs one chunk of lines at a time).")]
SingleHost = Annotated[bool, typer.Option("--single-host", help="Every role runs on this one machine: allow a "
                                          "SQLite database (Redis is still needed).")]
MetricsPort = Annotated[int | None, typer.Option(help="Serve Prometheus /metrics on this port (default: "
                                                 "BROKER_METRICS_PORT; neither: not served).")]
GC_THRESHOLDS = (50_000, 20, 10)  #: a started role's collector: allocations per young collection, and so on


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # ten lines of migration chatter at every start
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per upstream call: noise, and CPU on the hot path


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _split_settings(role: str, single_host: bool) -> Settings:
    """The settings of a split role; exits with why when the roles could not work together with them."""
    settings = Settings()
    if problems := split_problems(settings, single_host):
        for problem in problems:
            console.print(f"[bold red]broker {role}: refusing to start.[/] {problem}")
        raise typer.Exit(2)
    return settings


def _steady_gc() -> None:
    """The garbage collector of a started role.

    What startup made (modules, the app, the catalogue) lives as long as the process: frozen out of the collector,
    a full collection no longer walks it (it took ~100 ms, the tail of the gateway's latency). Young collections
    come every :data:`GC_THRESHOLDS` allocations instead of Python's 700: at 700, ``broker serve`` ran 1,200
    collections costing 0.9-1.1 s of CPU over benchmarks.throughput's 5,000 chat lines (a sixth of its CPU per
    line); at 50,000, 11 collections and 0.3 s, most of it the one collection here."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _config(procs: Processes, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """The API's uvicorn: read timeouts from the settings, so a slow client cannot hold a connection."""
    config = fast_config(procs.app(), host, port, log_level="info", quiet=False,
                         header_timeout=settings.http_header_timeout, body_timeout=settings.http_body_timeout)
    _steady_gc()
    return config


def _bootstrap(core: Core) -> str:
    """Make sure an admin key exists; what to print about it (its value only the first time)."""
    try:
        with session_scope(core.engine) as session:
            value = ensure_admin_key(session, core.settings)
    except IntegrityError:  # another API process stored the same BROKER_ADMIN_KEY at the same moment: it exists now
        with session_scope(core.engine) as session:
            value = ensure_admin_key(session, core.settings)
    if core.settings.admin_key:
        return "admin key: the value of BROKER_ADMIN_KEY"
    path = admin_key_file(core.settings)
    if value is None:
        return f"admin key: kept in {path} (printed at the first start)"
    return f"admin key (shown once; also kept in {path}, mode 0600): [bold]{value}[/]"


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000, threads: Threads = None,
          no_auth: Annotated[bool, typer.Option("--no-auth", help="Accept any API key.")] = False,
          simulator: Annotated[bool, typer.Option(help="Run the demo provider on loopback.")] = True,
          simulator_port: Annotated[int | None, typer.Option(
              help="The demo provider's port (default 8765, or a free one when 8765 is busy).")] = None) -> None:
    """Everything in one process: API, planner, workers and (by default) the demo provider simulator."""
    _logging()
    with startup_errors(console):
        require_free_port(host, port)
        settings = Settings(auth_disabled=no_auth) if no_auth else Settings()
        sim = None
        if simulator and not settings.providers_file:
            sim, settings = start_simulator(settings, simulator_port, console)
        core = Core.open(settings)
    procs = Processes(core)
    try:  # from the first thread on: a Ctrl-C at any point stops them all (a non-daemon thread left would hang exit)
        with startup_errors(console):
            procs.start_workers(threads or settings.worker_threads)
            procs.start_planner()
        key = "API key: any key (--no-auth)" if no_auth else _bootstrap(core)
        config = _config(procs, settings, host, port)  # before "API key:", the line that says the API answers
        console.print(f"[bold green]inference-broker[/] on http://{host}:{port}/v1  "
                      f"database={settings.database_url}  queue={'redis' if settings.redis_url else 'in-process'}")
        if sim is not None:
            console.print(f"demo provider (simulator) on {sim.base_url}; "
                          f"models: {', '.join(core.catalogue.model_names())}")
        console.print(key)
        uvicorn.Server(config).run()
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
def api(host: Host = "0.0.0.0", port: Port = 8000, single_host: SingleHost = False) -> None:
    """The HTTP API only (production: run planner and workers as their own processes)."""
    settings = _split_settings("api", single_host)
    _logging()
    with startup_errors(console):
        require_free_port(host, port)
        core = Core.open(settings)
    procs = Processes(core)
    try:
        config = _config(procs, settings, host, port)
        console.print(_bootstrap(core))
        uvicorn.Server(config).run()
    finally:
        procs.stop()


def _serve_metrics(procs: Processes, port: int | None) -> None:
    settings = procs.core.settings
    if (port := port or settings.metrics_port) is not None:
        procs.serve_metrics(port, settings.metrics_host)
        console.print(f"metrics on http://{settings.metrics_host}:{port}/metrics")


@app.command()
def worker(threads: Threads = None, single_host: SingleHost = False, metrics_port: MetricsPort = None) -> None:
    """Consume provider queues and call the upstreams (start as many as you like)."""
    settings = _split_settings("worker", single_host)
    _logging()
    with startup_errors(console):
        procs = Processes(Core.open(settings))
    try:
        with startup_errors(console):
            procs.start_workers(threads or settings.worker_threads)
        console.print(f"worker started with {threads or settings.worker_threads} threads")
        _serve_metrics(procs, metrics_port)
        _steady_gc()
        _wait_for_signal()
    finally:
        procs.stop()


@app.command()
def planner(single_host: SingleHost = False, metrics_port: MetricsPort = None) -> None:
    """Release work in priority order, take back expired leases, finish batches (run several: one leads, another
    takes over if it dies)."""
    settings = _split_settings("planner", single_host)
    _logging()
    with startup_errors(console):
        procs = Processes(Core.open(settings))
    try:
        with startup_errors(console):
            procs.start_planner()
        _serve_metrics(procs, metrics_port)
        _steady_gc()
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


@app.command()
def doctor(
    embedded: Annotated[bool, typer.Option(
        "--embedded", help="Check for `broker serve` (one process): no Redis or PostgreSQL needed.")] = False,
    no_providers: Annotated[bool, typer.Option(
        "--no-providers", help="Skip the providers (a container healthcheck: only what this process needs).")] = False,
) -> None:
    """Check the database, Redis, file storage and each provider (reachable, key set); exit 1 if any is wrong."""
    findings = run_checks(Settings(), split=not embedded, providers=not no_providers)
    table = Table("check", "", "detail", box=None, show_header=False)
    for f in findings:
        table.add_row(f.name, "[green]ok[/]" if f.ok else "[bold red]FAIL[/]", f.detail)
    out = Console()
    out.print(table)
    failed = sum(not f.ok for f in findings)
    out.print(f"[bold red]{failed} problem(s)[/]" if failed else "[bold green]all checks passed[/]")
    if failed:
        raise typer.Exit(1)


@app.command("config-docs")
def config_docs(
    output: Annotated[Path, typer.Option(help="Where to write the page.")] = DOCS_PATH,
    check: Annotated[bool, typer.Option("--check", help="Only say whether the page is up to date (exit 1 if not).")]
    = False,
) -> None:
    """Write docs/configuration.md from the settings class (every variable, type, default, description)."""
    page = render_configuration()
    if check:
        if not output.exists() or output.read_text() != page:
            console.print(f"{output} is stale: run `broker config-docs`")
            raise typer.Exit(1)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page)
    console.print(f"wrote {output}")


@db_app.command("upgrade")
def db_upgrade(create: Annotated[bool, typer.Option("--create", help="Create the SQLite file if it is missing.")]
               = False) -> None:
    """Upgrade the schema of the configured database (DATABASE_URL) to the newest migration."""
    settings = Settings()
    console.print(f"database: {settings.database_url}")
    sqlite_file = Path(settings.database_url.split("///", 1)[-1]) if settings.is_sqlite else None
    if sqlite_file is not None and not sqlite_file.exists() and not create:
        console.print(f"[red]error:[/] {sqlite_file.resolve()} does not exist; run from the broker's folder, set "
                      "DATABASE_URL, or pass --create to make a new database")
        raise typer.Exit(1)
    upgrade(make_engine(settings.database_url))
    console.print("database is at the newest schema")


register_batch_commands(app)  # submit, status, results, cancel: a client of any broker, over HTTP
register_label_command(app)
register_schedule_commands(app)  # schedules create, list, pause, resume, delete: over HTTP too
register_admin_commands(app)  # projects, keys, admin: over HTTP with an admin key


if __name__ == "__main__":
    app()
