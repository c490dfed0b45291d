// Providers: limits configured and in force, load, 429s, latency over the last hour, circuit, regions, native batches.
import { api } from "../api.js";
import { apiRef, card, count, h, ms } from "../dom.js";
import { linePlot } from "../charts.js";
import { every } from "./poll.js";

const clock = (unix) => new Date(unix * 1000).toISOString().slice(11, 16);
const limit = (value) => value === null || value === undefined ? "none" : count(Math.round(value));

function minutes(history) {
  // every minute of the hour, so that a quiet minute shows as a gap rather than a straight line across it
  const byMinute = new Map(history.data.map((m) => [m.minute, m]));
  const now = Math.floor(Date.now() / 60000) * 60;
  return Array.from({ length: 60 }, (_, i) => now - (59 - i) * 60).map((minute) => [minute, byMinute.get(minute)]);
}

function providerCard(p, history) {
  const span = minutes(history);
  const latency = linePlot([
    { name: "p50", points: span.map(([t, m]) => [t, m?.p50_ms ?? null]) },
    { name: "p95", points: span.map(([t, m]) => [t, m?.p95_ms ?? null]) },
  ], { format: ms, xFormat: clock });
  const traffic = linePlot([
    { name: "calls/min", points: span.map(([t, m]) => [t, m ? m.calls : null]) },
    { name: "429s/min", points: span.map(([t, m]) => [t, m ? m.rate_limited : null]) },
  ], { format: (v) => count(Math.round(v)), xFormat: clock });
  return card(p.id,
    h("p", {}, h("span", { class: "pill" }, p.kind), " ",
      p.circuit_open ? h("span", { class: "pill bad" }, "circuit open") : h("span", { class: "pill ok" }, "circuit closed"),
      " regions: ", p.regions.length ? p.regions.join(", ") : "any", " · models: ", p.models.join(", ")),
    h("table", { class: "compact" },
      h("thead", {}, h("tr", {}, ["", "concurrency", "rpm", "tpm"].map((c) => h("th", {}, c)))),
      h("tbody", {},
        h("tr", {}, h("th", {}, "configured"), h("td", {}, count(p.configured.max_concurrency)),
          h("td", {}, limit(p.configured.rpm)), h("td", {}, limit(p.configured.tpm))),
        h("tr", {}, h("th", {}, "in force"), h("td", {}, count(p.in_force.max_concurrency)),
          h("td", {}, limit(p.in_force.rpm)), h("td", {}, limit(p.in_force.tpm))))),
    h("div", { class: "stats" },
      h("div", { class: "stat" }, h("span", { class: "label" }, "In flight"), h("strong", {}, count(p.in_flight)),
        h("small", {}, `${p.interactive.in_flight} interactive · ${p.batch.in_flight} batch`)),
      h("div", { class: "stat" }, h("span", { class: "label" }, "Calls last minute"), h("strong", {}, count(p.calls_last_minute)),
        h("small", {}, `${p.rate_limited_last_minute} answered 429`)),
      h("div", { class: "stat" }, h("span", { class: "label" }, "Latency now"), h("strong", {}, ms(p.latency_ms.p50)),
        h("small", {}, `p95 ${ms(p.latency_ms.p95)}`)),
      h("div", { class: "stat" }, h("span", { class: "label" }, "Native batches in flight"),
        h("strong", {}, count(p.native_batches_in_flight)), h("small", {}, `${p.workers} worker(s) reporting`))),
    h("div", { class: "charts" }, h("div", {}, h("h3", {}, "Latency, last hour"), latency),
      h("div", {}, h("h3", {}, "Calls and 429s per minute"), traffic)),
    apiRef("/v1/providers"), apiRef(`/v1/providers/${p.id}/history`));
}

export async function render(root) {
  const load = async () => {
    const providers = await api("/v1/providers");
    const histories = await Promise.all(providers.data.map((p) => api(`/v1/providers/${p.id}/history`)));
    root.replaceChildren(h("h1", {}, "Providers"),
      ...(providers.data.length ? providers.data.map((p, i) => providerCard(p, histories[i])) :
        [h("p", {}, "No provider configured.")]));
  };
  await load();
  return every(10, load);
}
