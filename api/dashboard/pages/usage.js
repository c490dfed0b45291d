// Usage and cost: cost per day stacked by model, provider, route or project; tokens; spend per key; CSV export.
import { api, auth, saveBlob, scope } from "../api.js";
import { apiRef, card, count, h, table, usd } from "../dom.js";
import { stackedBars } from "../charts.js";

const DIMENSIONS = ["model", "provider", "route", "project_id"];

function days(start, end) {
  const list = [];
  for (let d = new Date(`${start}T00:00:00Z`); d <= new Date(`${end}T00:00:00Z`); d.setUTCDate(d.getUTCDate() + 1)) {
    list.push(d.toISOString().slice(0, 10));
  }
  return list;
}

function totalsBy(rows, dimension) {
  const totals = new Map();
  for (const row of rows) {
    const t = totals.get(row[dimension]) || { name: row[dimension], requests: 0, input: 0, output: 0, cost: 0 };
    t.requests += row.requests; t.input += row.input_tokens; t.output += row.output_tokens; t.cost += row.cost_usd;
    totals.set(row[dimension], t);
  }
  return [...totals.values()].sort((a, b) => b.cost - a.cost);
}

function csv(rows) {
  const columns = ["day", "project_id", "provider", "model", "route", "api_key_id", "requests", "input_tokens",
    "output_tokens", "cost_usd"];
  const quote = (v) => v === null || v === undefined ? "" : /[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v);
  return [columns.join(","), ...rows.map((row) => columns.map((c) => quote(row[c])).join(","))].join("\n") + "\n";
}

export async function render(root, { query }) {
  const end = query.get("end_date") || new Date().toISOString().slice(0, 10);
  const start = query.get("start_date") || new Date(Date.now() - 29 * 86400000).toISOString().slice(0, 10);
  const by = DIMENSIONS.includes(query.get("by")) ? query.get("by") : "model";
  const params = { ...scope(), start_date: start, end_date: end, group_by: by };
  const keyParams = { ...params, group_by: "api_key_id" };
  const [report, perKey] = await Promise.all([api("/v1/usage", { params }), api("/v1/usage", { params: keyParams })]);
  const bars = days(start, end).map((day) => ({ label: day.slice(5), parts: {} }));
  const index = new Map(days(start, end).map((day, i) => [day, i]));
  for (const row of report.data) {
    const bar = bars[index.get(row.day)];
    if (bar) bar.parts[row[by]] = (bar.parts[row[by]] || 0) + row.cost_usd;
  }
  const form = h("form", { class: "filters" },
    h("label", {}, "From ", h("input", { type: "date", name: "start_date", value: start })),
    h("label", {}, "to ", h("input", { type: "date", name: "end_date", value: end })),
    h("label", {}, "stacked by ", h("select", { name: "by" }, DIMENSIONS.filter((d) => auth.admin || d !== "project_id")
      .map((d) => h("option", { value: d, selected: d === by || null }, d.replace("_id", ""))))),
    h("button", { type: "submit" }, "Show"),
    h("button", { type: "button", id: "csv", onclick: () => saveBlob(
      new Blob([csv(report.data)], { type: "text/csv" }), `usage-by-${by}-${start}-${end}.csv`) }, "Export CSV"),
    h("button", { type: "button", onclick: () => saveBlob(
      new Blob([csv(perKey.data)], { type: "text/csv" }), `usage-by-key-${start}-${end}.csv`) }, "Export per key"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/usage?${new URLSearchParams(new FormData(form))}`;
  });
  root.replaceChildren(h("h1", {}, "Usage and cost"),
    card(`Cost per day by ${by.replace("_id", "")}`, form,
      h("p", {}, `${usd(report.total_cost_usd)} over ${count(report.total_requests)} requests · month to date `,
        usd(report.month_to_date_cost_usd), report.monthly_budget_usd ? ` of ${usd(report.monthly_budget_usd)} budget` : ""),
      stackedBars(bars, { format: usd }), apiRef("/v1/usage", params)),
    h("div", { class: "grid" },
      card(`Tokens by ${by.replace("_id", "")}`,
        table([["Name", (t) => t.name || "(none)"], ["Requests", (t) => count(t.requests)],
          ["Input tokens", (t) => count(t.input)], ["Output tokens", (t) => count(t.output)], ["Cost", (t) => usd(t.cost)]],
        totalsBy(report.data, by), "No usage in these days."), apiRef("/v1/usage", params)),
      card("Spend per API key",
        table([["Key", (t) => h("code", {}, t.name)], ["Requests", (t) => count(t.requests)],
          ["Tokens", (t) => count(t.input + t.output)], ["Cost", (t) => usd(t.cost)]],
        totalsBy(perKey.data, "api_key_id"), "No batch made with a key in these days."), apiRef("/v1/usage", keyParams))));
}
