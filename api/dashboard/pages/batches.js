// Batches: filtered, paginated list with live progress, ETA, risk and cost so far.
import { api, auth, scope } from "../api.js";
import { apiRef, card, h, pageLinks, progressBar, relative, table, usd, when } from "../dom.js";
import { every } from "./poll.js";

const STATUSES = ["", "validating", "in_progress", "finalizing", "completed", "failed", "expired", "cancelling",
  "cancelled"];
const ROUTES = ["", "auto", "realtime", "native_batch", "off_peak"];

export function statusPill(status, atRisk) {
  return [h("span", { class: `pill status-${status}` }, status.replace("_", " ")),
    atRisk ? h("span", { class: "pill bad", title: "will miss its window at its current pace" }, "at risk") : null];
}

export function routesTaken(batch) {
  const routes = Object.values(batch.routes || {});
  return routes.length ? routes.map((r) => `${r.provider} · ${r.route}`).join(", ") : batch.route;
}

function filterForm(query) {
  const select = (name, options) => h("select", { name },
    options.map((o) => h("option", { value: o, selected: query.get(name) === o || null }, o || `any ${name}`)));
  const form = h("form", { class: "filters" },
    select("status", STATUSES), select("route", ROUTES),
    h("input", { name: "model", placeholder: "model", value: query.get("model") || "" }),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) next.set(name, value);
    location.hash = `#/batches?${next}`;
  });
  form.addEventListener("change", (event) => { if (event.target.tagName === "SELECT") form.requestSubmit(); });
  return form;
}

function rows(list) {
  return table([
    ["Batch", (b) => h("a", { href: `#/batch/${b.id}?project=${b.project_id}`, class: "mono" }, b.id)],
    auth.admin ? ["Project", (b) => b.project_id] : null,
    ["Status", (b) => statusPill(b.status, b.at_risk)],
    ["Model", (b) => b.model || "–"],
    ["Route", (b) => routesTaken(b)],
    ["Progress", (b) => progressBar(b.request_counts.completed, b.request_counts.failed, b.request_counts.total)],
    ["ETA", (b) => ["validating", "in_progress"].includes(b.status) ? relative(b.estimated_completion_at) : "–"],
    ["Cost so far", (b) => usd(b.cost_usd)],
    ["Created", (b) => when(b.created_at)],
  ].filter(Boolean), list.data, "No batch matches.");
}

export async function render(root, { query }) {
  const params = { ...scope(), status: query.get("status"), model: query.get("model"), route: query.get("route"),
    limit: 20, after: query.get("after") };
  const body = h("div", { class: "rows" });
  const pager = h("div", { class: "pager" });
  const load = async () => {
    const list = await api("/v1/batches", { params });
    body.replaceChildren(rows(list));
    pager.replaceChildren(...pageLinks(list, "batches", query));
  };
  await load();
  root.replaceChildren(h("h1", {}, "Batches"),
    card("Batches", filterForm(query), body, pager, apiRef("/v1/batches", params)));
  return every(2, load);
}
