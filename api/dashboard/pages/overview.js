// Overview: throughput now, calls in flight per provider, spend against budget, batches at risk, recent failures.
import { api, scope } from "../api.js";
import { apiRef, card, count, h, relative, table, usd } from "../dom.js";
import { every } from "./poll.js";

const AT_RISK_SHOWN = 10;

function stat(label, value, note) {
  return h("div", { class: "stat" }, h("span", { class: "label" }, label), h("strong", {}, value),
    note ? h("small", {}, note) : null);
}

function budgetBar(spent, budget) {
  if (!budget) return h("small", {}, "no monthly budget set");
  const share = Math.min(1, spent / budget);
  return h("div", { class: `progress ${share > 0.9 ? "warn" : ""}`, title: `${usd(spent)} of ${usd(budget)}` },
    h("span", { class: "ok", style: `width:${(share * 100).toFixed(1)}%` }),
    h("em", {}, `${(share * 100).toFixed(1)}% of ${usd(budget)}`));
}

function view(data, providers) {
  const running = Object.values(data.batches_by_status).reduce((a, b) => a + b, 0);
  return [
    card("Now",
      h("div", { class: "stats" },
        stat("Lines/s", data.lines_per_second.toFixed(2), "ended in the last minute"),
        stat("Running batches", count(running),
          Object.entries(data.batches_by_status).map(([s, n]) => `${s} ${n}`).join(" · ") || "none"),
        stat("Cost today", usd(data.cost_today_usd)),
        h("div", { class: "stat wide" }, h("span", { class: "label" }, "Month to date"),
          h("strong", { id: "mtd" }, usd(data.month_to_date_cost_usd)),
          budgetBar(data.month_to_date_cost_usd, data.monthly_budget_usd))),
      apiRef("/v1/overview", scope())),
    card("Calls in flight per provider",
      table([
        ["Provider", (p) => h("a", { href: "#/providers" }, p.id)],
        ["Interactive", (p) => count(p.interactive.in_flight)],
        ["Batch", (p) => count(p.batch.in_flight)],
        ["Calls last minute", (p) => count(p.calls_last_minute)],
        ["429s last minute", (p) => count(p.rate_limited_last_minute)],
        ["Circuit", (p) => p.circuit_open ? h("span", { class: "pill bad" }, "open") : "closed"],
      ], providers.data, "No providers configured."),
      apiRef("/v1/providers")),
    card("Batches at risk of missing their window",
      data.at_risk.length > AT_RISK_SHOWN ?
        h("p", {}, `${data.at_risk.length} batches at risk; the ${AT_RISK_SHOWN} oldest:`) : null,
      table([
        ["Batch", (b) => h("a", { href: `#/batch/${b.id}?project=${b.project_id}` }, b.id)],
        ["Project", (b) => b.project_id],
        ["Done", (b) => `${count(b.done)} / ${count(b.total)}`],
        ["Expected end", (b) => relative(b.estimated_completion_at)],
        ["Window ends", (b) => relative(b.expires_at)],
      ], data.at_risk.slice(0, AT_RISK_SHOWN), "No batch is at risk."),
      apiRef("/v1/overview", scope())),
    card("Failures in the last hour, by error code",
      table([["Code", (f) => h("code", {}, f.code)], ["Lines", (f) => count(f.count)]],
        data.failures_last_hour, "No failed line in the last hour."),
      apiRef("/v1/overview", scope())),
  ];
}

export async function render(root) {
  const load = async () => {
    const [data, providers] = await Promise.all([api("/v1/overview", { params: scope() }), api("/v1/providers")]);
    root.replaceChildren(h("h1", {}, "Overview"), h("div", { class: "grid" }, view(data, providers)));
  };
  await load();
  return every(5, load);
}
