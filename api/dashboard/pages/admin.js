// Admin (admin keys): projects, their keys (create, revoke, rotate), model access, budgets and rate limits;
// admin keys on the page without a project.
import { api } from "../api.js";
import { act, apiRef, card, errorBox, h, table, usd, when } from "../dom.js";

const ORG = "/v1/organization";
const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);
const number = (text) => text === "" ? null : Number(text);

function form(fields, submitLabel, onSubmit, id) {
  const el = h("form", { class: "inline-form", id }, fields, h("button", { type: "submit" }, submitLabel));
  el.addEventListener("submit", (event) => {
    event.preventDefault();
    act(el.querySelector("button[type=submit]"), () => onSubmit(Object.fromEntries(new FormData(el))));
  });
  return el;
}

const input = (name, label, attrs = {}) => h("label", {}, label, " ", h("input", { name, ...attrs }));

// A key's button (rotate, revoke) for a table column: calls `${keys}/${id}${path}`, then shows the answer's new value.
const keyButton = (keys, rerender) => (label, path, method, cls) => (k) => h("button", {
  type: "button", class: cls, dataset: { key: k.id },
  onclick: (e) => act(e.target, async () => {
    const answer = await api(`${keys}/${k.id}${path}`, { method, project: null });
    await rerender(answer.value);
  }),
}, label);

function secret(value) {
  return h("div", { class: "secret", role: "status" }, "New key (shown once, copy it now): ", h("code", { id: "new-key" }, value));
}

async function projectsCard() {
  const projects = await api(`${ORG}/projects`, { params: { limit: 100, include_archived: true }, project: null });
  return card("Projects",
    table([
      ["Project", (p) => h("a", { href: `#/admin/${p.id}` }, p.name === p.id ? p.id : `${p.name} (${p.id})`)],
      ["Status", (p) => p.status],
      ["Month to date", (p) => usd(p.month_to_date_cost_usd)],
      ["Budget", (p) => usd(p.monthly_budget_usd)],
      ["Models", (p) => p.allowed_models ? p.allowed_models.join(", ") : "all"],
      ["Created", (p) => when(p.created_at)],
    ], projects.data),
    form([input("name", "Name", { required: true }), input("monthly_budget_usd", "Budget $", { type: "number", step: "any", min: 0 })],
      "Create project", async (v) => {
        const made = await api(`${ORG}/projects`, { method: "POST", project: null,
          body: { name: v.name, monthly_budget_usd: number(v.monthly_budget_usd) } });
        location.hash = `#/admin/${made.id}`;
      }, "create-project"),
    apiRef(`${ORG}/projects`, { limit: 100, include_archived: true }));
}

async function adminKeysCard(rerender) {
  const keys = await api(`${ORG}/admin_api_keys`, { params: { limit: 100 }, project: null });
  const action = keyButton(`${ORG}/admin_api_keys`, rerender);
  return card("Admin keys",
    table([
      ["Key", (k) => h("code", {}, k.redacted_value)], ["Name", (k) => k.name || "–"],
      ["Created", (k) => when(k.created_at)], ["Last used", (k) => when(k.last_used_at)],
      ["", action("Rotate", "/rotate", "POST")], ["", action("Revoke", "", "DELETE", "danger")],
    ], keys.data),
    form([input("name", "Name")], "Create admin key", async (v) => {
      const made = await api(`${ORG}/admin_api_keys`, { method: "POST", project: null, body: { name: v.name } });
      await rerender(made.value);
    }, "create-admin-key"),
    apiRef(`${ORG}/admin_api_keys`, { limit: 100 }));
}

async function projectCards(projectId, rerender) {
  const base = `${ORG}/projects/${projectId}`;
  const [project, keys, limits] = await Promise.all([
    api(base, { project: null }), api(`${base}/api_keys`, { params: { limit: 100 }, project: null }),
    api(`${base}/rate_limits`, { project: null })]);
  const shown = h("div");
  const keyAction = keyButton(`${base}/api_keys`, rerender);
  return [
    card(`Project ${project.name}`,
      form([
        input("name", "Name", { value: project.name }),
        input("monthly_budget_usd", "Monthly budget $", { type: "number", step: "any", min: 0, value: project.monthly_budget_usd ?? "" }),
        input("allowed_models", "Allowed models", { value: (project.allowed_models || []).join(", "), placeholder: "all" }),
        input("blocked_models", "Blocked models", { value: project.blocked_models.join(", ") }),
      ], "Save", async (v) => {
        await api(base, { method: "POST", project: null, body: {
          name: v.name, monthly_budget_usd: number(v.monthly_budget_usd),
          allowed_models: v.allowed_models.trim() ? list(v.allowed_models) : null, blocked_models: list(v.blocked_models) } });
        await rerender();
      }, "project-settings"),
      apiRef(base)),
    card("API keys", shown,
      table([
        ["Key", (k) => h("code", {}, k.redacted_value)], ["Name", (k) => k.name || "–"], ["Scope", (k) => k.scope],
        ["Budget", (k) => usd(k.monthly_budget_usd)], ["Last used", (k) => when(k.last_used_at)],
        ["", keyAction("Rotate", "/rotate", "POST")], ["", keyAction("Revoke", "", "DELETE", "danger")],
      ], keys.data, "No key in this project."),
      form([input("name", "Name"), h("label", {}, "Scope ", h("select", { name: "scope" },
        h("option", { value: "all" }, "all"), h("option", { value: "read_only" }, "read_only")))],
      "Create key", async (v) => {
        const made = await api(`${base}/api_keys`, { method: "POST", project: null, body: { name: v.name, scope: v.scope } });
        await rerender(made.value);
      }, "create-key"),
      apiRef(`${base}/api_keys`, { limit: 100 })),
    card("Rate limits per model",
      table([
        ["Model", (l) => l.model],
        ["Requests/min", (l) => l.max_requests_per_1_minute ?? "none"],
        ["Tokens/min", (l) => l.max_tokens_per_1_minute ?? "none"],
        ["", (l) => form([
          input("rpm", "rpm", { type: "number", min: 1, value: l.max_requests_per_1_minute ?? "" }),
          input("tpm", "tpm", { type: "number", min: 1, value: l.max_tokens_per_1_minute ?? "" })], "Set", async (v) => {
          await api(`${base}/rate_limits/${l.id}`, { method: "POST", project: null,
            body: { max_requests_per_1_minute: number(v.rpm), max_tokens_per_1_minute: number(v.tpm) } });
          await rerender();
        })],
      ], limits.data),
      apiRef(`${base}/rate_limits`)),
  ];
}

export async function render(root, { args }) {
  const draw = async (newKey) => {
    try {
      const cards = [await projectsCard()];
      if (args[0]) cards.push(...await projectCards(args[0], draw));
      else cards.push(await adminKeysCard(draw));
      root.replaceChildren(...[h("h1", {}, "Admin"), newKey ? secret(newKey) : null, h("div", { class: "stack" }, cards)]
        .filter(Boolean));
    } catch (error) {
      root.replaceChildren(h("h1", {}, "Admin"), errorBox(error));
    }
  };
  await draw();
}
