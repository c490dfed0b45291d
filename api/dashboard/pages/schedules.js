// Schedules: next and last run with its outcome; pause and resume; 20 a page.
import { actingProject, api } from "../api.js";
import { act, apiRef, card, h, pageLinks, relative, table, when } from "../dom.js";

export function needsProject(root, title) {
  if (actingProject()) return false;
  root.replaceChildren(h("h1", {}, title),
    card(title, h("p", {}, "These belong to one project: pick one in the project list above.")));
  return true;
}

export async function render(root, { query }) {
  if (needsProject(root, "Schedules")) return;
  const params = { limit: 20, after: query.get("after") };
  const load = async () => {
    const list = await api("/v1/schedules", { params });
    root.replaceChildren(h("h1", {}, "Schedules"), card("Schedules", table([
      ["Schedule", (s) => h("code", {}, s.id)],
      ["Cron", (s) => `${s.cron} (${s.timezone})`],
      ["Endpoint", (s) => s.endpoint],
      ["Next run", (s) => s.enabled ? `${when(s.next_run_at)} (${relative(s.next_run_at)})` : "paused"],
      ["Last run", (s) => when(s.last_run_at)],
      ["Outcome", (s) => s.last_error ? h("span", { class: "error" }, s.last_error) :
        s.last_batch_id ? h("a", { href: `#/batch/${s.last_batch_id}?project=${actingProject()}` }, s.last_batch_id) : "–"],
      ["", (s) => h("button", {
        type: "button", onclick: (e) => act(e.target, async () => {
          await api(`/v1/schedules/${s.id}`, { method: "POST", body: { enabled: !s.enabled } });
          await load();
        }),
      }, s.enabled ? "Pause" : "Resume")],
    ], list.data, "No schedule in this project."), h("div", { class: "pager" }, pageLinks(list, "schedules", query)),
    apiRef("/v1/schedules", params, actingProject())));
  };
  await load();
}
