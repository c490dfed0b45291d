// Webhooks: endpoints, deliveries newest first (20 a page) and their outcome, redeliver.
import { actingProject, api } from "../api.js";
import { act, apiRef, card, h, pageLinks, table, when } from "../dom.js";
import { needsProject } from "./schedules.js";

const ENDPOINTS = { limit: 20 }; // all of them: a project holds at most 20 (MAX_ENDPOINTS_PER_PROJECT)

export async function render(root, { query }) {
  if (needsProject(root, "Webhooks")) return;
  const params = { limit: 20, after: query.get("after") };
  const load = async () => {
    const [endpoints, deliveries] = await Promise.all([
      api("/v1/webhooks", { params: ENDPOINTS }),
      api("/v1/webhooks/deliveries", { params })]);
    root.replaceChildren(h("h1", {}, "Webhooks"),
      card("Endpoints", table([
        ["Endpoint", (e) => h("code", {}, e.id)], ["URL", (e) => e.url], ["Events", (e) => e.events.join(", ")],
        ["State", (e) => e.enabled ? "enabled" : `disabled: ${e.disabled_reason || ""}`], ["Created", (e) => when(e.created_at)],
      ], endpoints.data, "No endpoint registered."), apiRef("/v1/webhooks", ENDPOINTS, actingProject())),
      card("Recent deliveries", table([
        ["Event", (d) => `${d.event_type} (${d.event_id})`], ["URL", (d) => d.url],
        ["Status", (d) => h("span", { class: `pill status-${d.status}` }, d.status)], ["Attempts", (d) => d.attempts],
        ["Last answer", (d) => d.last_status_code ? `HTTP ${d.last_status_code}` : d.last_error || "–"],
        ["Created", (d) => when(d.created_at)],
        ["", (d) => d.status === "pending" ? null : h("button", {
          type: "button", onclick: (e) => act(e.target, async () => {
            await api(`/v1/webhooks/deliveries/${d.id}/redeliver`, { method: "POST" });
            await load();
          }),
        }, "Redeliver")],
      ], deliveries.data, "No delivery yet."), h("div", { class: "pager" }, pageLinks(deliveries, "webhooks", query)),
      apiRef("/v1/webhooks/deliveries", params, actingProject())));
  };
  await load();
}
