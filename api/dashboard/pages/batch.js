// One batch: progress, timeline, failures by code with a sample, routes taken, files, cancel and retry.
import { api, download } from "../api.js";
import { act, apiRef, card, count, errorBox, h, progressBar, relative, table, usd, when } from "../dom.js";
import { routesTaken, statusPill } from "./batches.js";
import { every } from "./poll.js";

const STEPS = [["created_at", "created"], ["in_progress_at", "in progress"], ["finalizing_at", "finalizing"],
  ["cancelling_at", "cancelling"], ["completed_at", "completed"], ["failed_at", "failed"],
  ["expired_at", "expired"], ["cancelled_at", "cancelled"]];
const RUNNING = ["validating", "in_progress", "finalizing", "cancelling"];

function timeline(batch) {
  const steps = STEPS.filter(([field]) => batch[field]).sort(([a], [b]) => batch[a] - batch[b]);
  return h("ol", { class: "timeline" }, steps.map(([field, label]) =>
    h("li", {}, h("strong", {}, label), h("span", {}, when(batch[field])))),
  batch.expires_at && RUNNING.includes(batch.status) ?
    h("li", { class: "future" }, h("strong", {}, "window ends"), h("span", {}, `${when(batch.expires_at)} (${relative(batch.expires_at)})`)) : null);
}

function files(batch, project) {
  const link = (label, id, name) => id ? h("button", {
    type: "button", class: "link", onclick: (e) => act(e.target, () => download(id, name, project)),
  }, label) : null;
  return h("div", { class: "actions" },
    link("Download input", batch.input_file_id, `${batch.id}-input.jsonl`),
    link("Download output", batch.output_file_id, `${batch.id}-output.jsonl`),
    link("Download errors", batch.error_file_id, `${batch.id}-errors.jsonl`),
    !batch.output_file_id && !batch.error_file_id ? h("small", {}, "Result files appear as lines end.") : null);
}

export async function render(root, { args, query }) {
  const id = args[0];
  const project = query.get("project") || undefined;
  const path = `/v1/batches/${id}`;
  const load = async () => {
    const [batch, failures] = await Promise.all([api(path, { project }), api(`${path}/failures`, { project })]);
    const counts = batch.request_counts;
    const buttons = h("div", { class: "actions" },
      ["validating", "in_progress"].includes(batch.status) ? h("button", {
        type: "button", class: "danger", id: "cancel",
        onclick: (e) => act(e.target, async () => { await api(`${path}/cancel`, { method: "POST", project }); await load(); }),
      }, "Cancel batch") : null,
      ["completed", "expired", "cancelled"].includes(batch.status) && counts.failed > 0 ? h("button", {
        type: "button", id: "retry",
        onclick: (e) => act(e.target, async () => { await api(`${path}/retry`, { method: "POST", project }); await load(); }),
      }, `Retry ${count(counts.failed)} failed lines`) : null);
    root.replaceChildren(
      h("p", {}, h("a", { href: "#/batches" }, "← Batches")),
      h("h1", { class: "mono" }, batch.id, " ", statusPill(batch.status, batch.at_risk)),
      h("div", { class: "grid" },
        card("Progress",
          progressBar(counts.completed, counts.failed, counts.total),
          h("dl", { class: "facts" },
            h("dt", {}, "Completed"), h("dd", {}, count(counts.completed)),
            h("dt", {}, "Failed"), h("dd", {}, count(counts.failed)),
            h("dt", {}, "Cost so far"), h("dd", { id: "cost" }, usd(batch.cost_usd)),
            h("dt", {}, "Tokens"), h("dd", {}, `${count(batch.usage?.input_tokens)} in · ${count(batch.usage?.output_tokens)} out`),
            h("dt", {}, "Estimated end"), h("dd", {}, RUNNING.includes(batch.status) ? relative(batch.estimated_completion_at) : "–"),
            h("dt", {}, "Project"), h("dd", {}, batch.project_id),
            h("dt", {}, "Model"), h("dd", {}, batch.model || "–"),
            h("dt", {}, "Endpoint"), h("dd", {}, batch.endpoint),
            h("dt", {}, "Priority"), h("dd", {}, String(batch.priority)),
            h("dt", {}, "Max cost"), h("dd", {}, usd(batch.max_cost_usd))),
          buttons, apiRef(path, {}, project)),
        card("Timeline", timeline(batch), apiRef(path, {}, project)),
        card("Failures by error code",
          table([["Code", (f) => h("code", {}, f.code)], ["HTTP", (f) => f.status_code ?? "–"],
            ["Lines", (f) => count(f.count)], ["Sample", (f) => h("span", { class: "sample" }, f.custom_id ? `${f.custom_id}: ` : "", f.message || "")]],
          failures.data, "No failed line."),
          apiRef(`${path}/failures`, {}, project)),
        card("Routes taken",
          table([["Model", ([model]) => model], ["Provider", ([, r]) => r.provider], ["Route", ([, r]) => r.route],
            ["Cost per line (est.)", ([, r]) => usd(r.line_cost_usd)]], Object.entries(batch.routes || {}),
          `Asked route: ${routesTaken(batch)} (chosen at validation).`),
          apiRef(path, {}, project)),
        card("Files", files(batch, project),
          batch.errors?.data?.length ? table([["Line", (e) => e.line ?? "–"], ["Code", (e) => e.code], ["Message", (e) => e.message]], batch.errors.data.slice(0, 20)) : null,
          apiRef(`/v1/files/${batch.output_file_id || batch.input_file_id}`, {}, project))));
    return batch;
  };
  try {
    await load();
  } catch (error) {
    root.replaceChildren(h("p", {}, h("a", { href: "#/batches" }, "← Batches")), errorBox(error));
    return null;
  }
  return every(2, load);
}
