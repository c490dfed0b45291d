// Small DOM helpers: build elements, format numbers and times, show the API call behind a number.
import { auth, url } from "./api.js";

/** h("div", {class: "x", onclick: f}, child, ...): an element; children are nodes, strings or arrays. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "style") el.style.cssText = value; // CSSOM: allowed under the page's style-src 'self'

    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const usd = (value) => value === null || value === undefined ? "–" :
  `$${Number(value).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: value < 1 ? 6 : 2 })}`;
export const count = (value) => value === null || value === undefined ? "–" : Number(value).toLocaleString("en-US");
export const ms = (value) => value === null || value === undefined ? "–" : `${Math.round(value)} ms`;

export function when(unix) {
  if (!unix) return "–";
  return new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function relative(unix) {
  if (!unix) return "–";
  const seconds = Math.round(unix - Date.now() / 1000);
  const size = Math.abs(seconds);
  const text = size < 90 ? `${size}s` : size < 5400 ? `${Math.round(size / 60)}m` :
    size < 172800 ? `${Math.round(size / 3600)}h` : `${Math.round(size / 86400)}d`;
  return seconds >= 0 ? `in ${text}` : `${text} ago`;
}

/** The call that gives the numbers beside it: a curl line to copy, and the link to its docs. */
export function apiRef(path, params = {}, project = null) {
  const target = url(path, params);
  const header = auth.admin && project ? ` -H "OpenAI-Project: ${project}"` : "";
  const curl = `curl -H "Authorization: Bearer $BROKER_KEY"${header} ${location.origin}${target}`;
  return h("details", { class: "api-ref" },
    h("summary", { title: "The API call that gives these numbers" }, "API"),
    h("code", {}, `GET ${target}`), h("pre", {}, curl),
    h("a", { href: "/docs", target: "_blank", rel: "noopener" }, "API docs"));
}

export function card(title, ...body) {
  return h("section", { class: "card" }, h("h2", {}, title), ...body);
}

export function table(columns, rows, empty = "Nothing here yet.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", {}, label)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row)))))));
}

/** "First page" and "Next page" links of a list the API pages with ``after`` and ``has_more``: ``page`` is the
 * page's hash path ("batches"), ``query`` its query (filters are kept), ``cursor`` the parameter holding ``after``. */
export function pageLinks(list, page, query, cursor = "after") {
  const link = (params, text) => h("a", { href: `#/${page}${params.toString() ? `?${params}` : ""}`, class: "button" },
    text);
  const first = new URLSearchParams(query);
  first.delete(cursor);
  const next = new URLSearchParams(query);
  next.set(cursor, list.last_id || "");
  return [query.get(cursor) ? link(first, "First page") : null, list.has_more ? link(next, "Next page") : null]
    .filter(Boolean);
}

export function progressBar(done, failed, total) {
  const share = total ? Math.min(1, (done + failed) / total) : 0;
  const failedShare = total ? Math.min(1, failed / total) : 0;
  return h("div", {
    class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": total,
    "aria-valuenow": done + failed, title: `${done} completed, ${failed} failed of ${total}`,
  },
  h("span", { class: "ok", style: `width:${((share - failedShare) * 100).toFixed(1)}%` }),
  h("span", { class: "bad", style: `width:${(failedShare * 100).toFixed(1)}%` }),
  h("em", {}, `${count(done + failed)} / ${count(total)}`));
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error.message || String(error));
}

/** Run an action from a button: disable it meanwhile, report a failure next to it. */
export async function act(button, action) {
  button.disabled = true;
  button.parentElement.querySelector(".error")?.remove();
  try {
    await action();
  } catch (error) {
    button.after(errorBox(error));
  } finally {
    button.disabled = false;
  }
}
