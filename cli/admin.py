"""``broker projects | keys | admin``: governance over HTTP with an admin key, against any broker.

The admin key comes from ``--admin-key`` / ``BROKER_ADMIN_KEY``, else from the file the first start wrote
(``<data dir>/admin_key``). A project is named by its id (``proj_…``) or its name. Values of new and rotated keys
are printed alone on stdout (so ``$(broker keys create …)`` captures them); everything else goes to stderr.
"""


from typing import Annotated, Any

import openai
import typer
from rich.console import Console
from rich.table import Table

from broker.bootstrap import admin_key_file
from broker.settings import Settings
from cli.client import DEFAULT_BROKER_URL, BrokerUrl, CliError, connect, friendly_errors, when

PAGE = 100  #: objects fetched per list call
projects_app = typer.Typer(help="Projects: create, list, show, set policies (budget, regions, models), archive.",
                           no_args_is_help=True)
keys_app = typer.Typer(help="Project API keys: create, list, revoke, rotate.", no_args_is_help=True)
admin_app = typer.Typer(help="Admin API keys and the audit log.", no_args_is_help=True)
err = Console(stderr=True)

AdminKey = Annotated[str | None, typer.Option("--admin-key", envvar="BROKER_ADMIN_KEY", show_envvar=True,
                                              help="Admin API key (default: the file the first start wrote).")]
ProjectRef = Annotated[str, typer.Argument(help="Project id (proj_…) or name.")]
ProjectOpt = Annotated[str, typer.Option("--project", help="Project id (proj_…) or name.")]
Grace = Annotated[int, typer.Option(help="Seconds the old value keeps working.")]
Budget = Annotated[float | None, typer.Option(help="Monthly budget in USD: dispatch stops past it.")]
Models = Annotated[str | None, typer.Option(help="Comma separated model names.")]


def admin_client(url: str, admin_key: str | None) -> openai.OpenAI:
    if not admin_key:
        path = admin_key_file(Settings())
        if not path.is_file():
            raise CliError(f"no admin key: pass --admin-key or set BROKER_ADMIN_KEY (the first `broker serve` "
                           f"printed one and kept it in {path})")
        admin_key = path.read_text().strip()
    return connect(url, admin_key)


def _get(client: openai.OpenAI, path: str, **params: Any) -> Any:
    return client.get(path, options={"params": params}, cast_to=object)


def _post(client: openai.OpenAI, path: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(path, body=body, cast_to=object)


def _all(client: openai.OpenAI, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = None
    while True:
        page = _get(client, path, limit=PAGE, **params, **({"after": after} if after else {}))
        items += page["data"]
        if not page["has_more"]:
            return items
        after = page["last_id"]


def project_id(client: openai.OpenAI, ref: str) -> str:
    if ref.startswith("proj_"):
        return ref
    for project in _all(client, "/organization/projects", include_archived=True):
        if project["name"] == ref:
            return str(project["id"])
    raise CliError(f"no project named '{ref}' (`broker projects list`)")


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _show_project(p: dict[str, Any]) -> None:
    budget = "none" if p["monthly_budget_usd"] is None else f"${p['monthly_budget_usd']:,.2f}"
    allowed = "all" if p["allowed_models"] is None else ", ".join(p["allowed_models"]) or "none"
    err.print(f"project {p['name']} ({p['id']}, {p['status']}): monthly budget {budget} (spent this month "
              f"${p['month_to_date_cost_usd']:,.4f}), default regions {', '.join(p['regions'] or []) or 'any'}, "
              f"models allowed {allowed}, blocked {', '.join(p['blocked_models']) or 'none'}")


@projects_app.command("create")
def projects_create(name: Annotated[str, typer.Argument(help="Project name.")], monthly_budget_usd: Budget = None,
                    regions: Annotated[str | None, typer.Option(help="Default regions, comma separated.")] = None,
                    allow_models: Models = None, block_models: Models = None,
                    url: BrokerUrl = DEFAULT_BROKER_URL, admin_key: AdminKey = None) -> None:
    """Create a project; prints its id on stdout."""
    body: dict[str, Any] = {"name": name, "monthly_budget_usd": monthly_budget_usd,
                            "regions": _split(regions) or None, "blocked_models": _split(block_models)}
    if allow_models is not None:
        body["allowed_models"] = _split(allow_models)
    with friendly_errors(err):
        project = _post(admin_client(url, admin_key), "/organization/projects", body)
        _show_project(project)
        typer.echo(project["id"])


@projects_app.command("list")
def projects_list(include_archived: Annotated[bool, typer.Option(help="Show archived projects too.")] = False,
                  url: BrokerUrl = DEFAULT_BROKER_URL, admin_key: AdminKey = None) -> None:
    """Every project with its policies."""
    with friendly_errors(err):
        projects = _all(admin_client(url, admin_key), "/organization/projects", include_archived=include_archived)
    table = Table("id", "name", "status", "budget", "spent this month", "regions", "models")
    for p in projects:
        table.add_row(p["id"], p["name"], p["status"],
                      "-" if p["monthly_budget_usd"] is None else f"${p['monthly_budget_usd']:,.2f}",
                      f"${p['month_to_date_cost_usd']:,.4f}", ", ".join(p["regions"] or []) or "any",
                      "all" if p["allowed_models"] is None else ", ".join(p["allowed_models"]) or "none")
    Console().print(table)


@projects_app.command("set")
def projects_set(
    project: ProjectRef, monthly_budget_usd: Budget = None,
    no_budget: Annotated[bool, typer.Option("--no-budget", help="Remove the monthly budget.")] = False,
    regions: Annotated[str | None, typer.Option(help="Default constraints.regions, comma separated "
                                                "(e.g. eu); a batch's own constraints override it.")] = None,
    any_region: Annotated[bool, typer.Option("--any-region", help="Remove the default regions.")] = False,
    allow_models: Annotated[str | None, typer.Option(help="Only these models (comma separated).")] = None,
    all_models: Annotated[bool, typer.Option("--all-models", help="Remove the allow list.")] = False,
    block_models: Annotated[str | None, typer.Option(help="Never these models (comma separated; '' clears).")] = None,
    name: Annotated[str | None, typer.Option(help="Rename the project.")] = None,
    url: BrokerUrl = DEFAULT_BROKER_URL, admin_key: AdminKey = None,
) -> None:
    """Set a project's name, monthly budget, default regions and model access (only what is given changes)."""
    body: dict[str, Any] = {"name": name} if name else {}
    if no_budget or monthly_budget_usd is not None:
        body["monthly_budget_usd"] = None if no_budget else monthly_budget_usd
    if any_region or regions is not None:
        body["regions"] = None if any_region else _split(regions)
    if all_models or allow_models is not None:
        body["allowed_models"] = None if all_models else _split(allow_models)
    if block_models is not None:
        body["blocked_models"] = _split(block_models)
    with friendly_errors(err):
        client = admin_client(url, admin_key)
        _show_project(_post(client, f"/organization/projects/{project_id(client, project)}", body))


@projects_app.command("archive")
def projects_archive(project: ProjectRef, url: BrokerUrl = DEFAULT_BROKER_URL, admin_key: AdminKey = None) -> None:
    """Archive a project: its keys stop working at once; its data stays readable by admins."""
    with friendly_errors(err):
        client = admin_client(url, admin_key)
        _show_project(_post(client, f"/organization/projects/{project_id(client, project)}/archive"))


def _key_table(keys: list[dict[str, Any]]) -> Table:
    table = Table("id", "name", "value", "scope", "created", "last used", "expires")
    for k in keys:
        table.add_row(k["id"], k["name"] or "-", k["redacted_value"], k.get("scope", "admin"), when(k["created_at"]),
                      when(k["last_used_at"]), when(k["expires_at"]))
    return table


@keys_app.command("create")
def keys_create(project: ProjectOpt = "default", name: Annotated[str, typer.Option(help="A label.")] = "",
                read_only: Annotated[bool, typer.Option("--read-only", help="Reads only: writes get 403.")] = False,
                expires_at: Annotated[int | None, typer.Option(help="Unix time the key stops working.")] = None,
                monthly_budget_usd: Budget = None, url: BrokerUrl = DEFAULT_BROKER_URL,
                admin_key: AdminKey = None) -> None:
    """Create a key for a project (the project is created if the name is new) and print its value once."""
    with friendly_errors(err):
        client = admin_client(url, admin_key)
        try:
            pid = project_id(client, project)
        except CliError:
            pid = _post(client, "/organization/projects", {"name": project})["id"]
            err.print(f"created project {project} ({pid})")
        key = _post(client, f"/organization/projects/{pid}/api_keys",
                    {"name": name, "scope": "read_only" if read_only else "all", "expires_at": expires_at,
                     "monthly_budget_usd": monthly_budget_usd})
        err.print(f"key {key['id']} for project {project}; the value is shown this once:")
        typer.echo(key["value"])


@keys_app.command("list")
def keys_list(project: ProjectOpt = "default", url: BrokerUrl = DEFAULT_BROKER_URL, admin_key: AdminKey = None) -> None:
    """A project's live keys, redacted."""
    with friendly_errors(err):
        client = admin_client(url, admin_key)
        keys = _all(client, f"/organization/projects/{project_id(client, project)}/api_keys")
    Console().print(_key_table(keys))


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="Key id (key_…).")], project: ProjectOpt = "default",
                url: BrokerUrl = DEFAULT_BROKER_URL, admin_key: AdminKey = None) -> None:
    """Revoke a key: its next call gets 401."""
    with friendly_errors(err):
        client = admin_client(url, admin_key)
        client.delete(f"/organization/projects/{project_id(client, project)}/api_keys/{key_id}", cast_to=object)
        err.print(f"revoked {key_id}")


@keys_app.command("rotate")
def keys_rotate(key_id: Annotated[str, typer.Argument(help="Key id (key_…).")], project: ProjectOpt = "default",
                grace_period_seconds: Grace = 3600, url: BrokerUrl = DEFAULT_BROKER_URL,
                admin_key: AdminKey = None) -> None:
    """Give a key a new value (printed once); the old one works for the grace period."""
    with friendly_errors(err):
        client = admin_client(url, admin_key)
        key = _post(client, f"/organization/projects/{project_id(client, project)}/api_keys/{key_id}/rotate",
                    {"grace_period_seconds": grace_period_seconds})
        err.print(f"rotated {key_id}; the old value works until {when(key['previous_value_expires_at'])}")
        typer.echo(key["value"])


@admin_app.command("create-key")
def admin_create_key(name: Annotated[str, typer.Option(help="A label.")] = "", url: BrokerUrl = DEFAULT_BROKER_URL,
                     admin_key: AdminKey = None) -> None:
    """Create another admin key and print its value once."""
    with friendly_errors(err):
        key = _post(admin_client(url, admin_key), "/organization/admin_api_keys", {"name": name})
        err.print(f"admin key {key['id']}; the value is shown this once:")
        typer.echo(key["value"])


@admin_app.command("list-keys")
def admin_list_keys(url: BrokerUrl = DEFAULT_BROKER_URL, admin_key: AdminKey = None) -> None:
    """The live admin keys, redacted."""
    with friendly_errors(err):
        keys = _all(admin_client(url, admin_key), "/organization/admin_api_keys")
    Console().print(_key_table(keys))


@admin_app.command("revoke-key")
def admin_revoke_key(key_id: Annotated[str, typer.Argument(help="Admin key id (key_…).")],
                     url: BrokerUrl = DEFAULT_BROKER_URL, admin_key: AdminKey = None) -> None:
    """Revoke an admin key."""
    with friendly_errors(err):
        admin_client(url, admin_key).delete(f"/organization/admin_api_keys/{key_id}", cast_to=object)
        err.print(f"revoked {key_id}")


@admin_app.command("rotate-key")
def admin_rotate_key(key_id: Annotated[str, typer.Argument(help="Admin key id (key_…).")],
                     grace_period_seconds: Grace = 3600, url: BrokerUrl = DEFAULT_BROKER_URL,
                     admin_key: AdminKey = None) -> None:
    """Give an admin key a new value (printed once); the old one works for the grace period."""
    with friendly_errors(err):
        key = _post(admin_client(url, admin_key), f"/organization/admin_api_keys/{key_id}/rotate",
                    {"grace_period_seconds": grace_period_seconds})
        typer.echo(key["value"])


@admin_app.command("audit")
def admin_audit(event_type: Annotated[list[str] | None, typer.Option("--type", help="Event type (repeatable).")] = None,
                project: Annotated[str | None, typer.Option(help="Project id or name.")] = None,
                limit: Annotated[int, typer.Option(min=1, max=100)] = 50,
                url: BrokerUrl = DEFAULT_BROKER_URL, admin_key: AdminKey = None) -> None:
    """The newest audit log events."""
    with friendly_errors(err):
        client = admin_client(url, admin_key)
        params: dict[str, Any] = {"limit": limit, "event_types[]": event_type or []}
        if project:
            params["project_ids[]"] = [project_id(client, project)]
        events = _get(client, "/organization/audit_logs", **params)["data"]
    table = Table("when", "type", "project", "actor", "from", "object")
    for e in events:
        actor = e["actor"]
        subject = e.get(e["type"]) or {}
        table.add_row(when(e["effective_at"]), e["type"], (e["project"] or {}).get("name", "-"),
                      actor["api_key"]["id"] or "-", actor["ip_address"] or "-", subject.get("id") or "-")
    Console().print(table)


def register(main: typer.Typer) -> None:
    main.add_typer(projects_app, name="projects")
    main.add_typer(keys_app, name="keys")
    main.add_typer(admin_app, name="admin")



