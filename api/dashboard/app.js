// The dashboard shell: sign-in, the project picker, and a hash router over the pages.
import { api, auth } from "./api.js";
import { errorBox, h } from "./dom.js";
import * as admin from "./pages/admin.js";
import * as batch from "./pages/batch.js";
import * as batches from "./pages/batches.js";
import * as overview from "./pages/overview.js";
import * as providers from "./pages/providers.js";
import * as schedules from "./pages/schedules.js";
import * as usage from "./pages/usage.js";
import * as webhooks from "./pages/webhooks.js";

const PAGES = { overview, batches, batch, providers, usage, schedules, webhooks, admin };
const $ = (id) => document.getElementById(id);
let stopPage = null;

/** Who the key is: an admin key can list projects; a project key learns its project from /v1/overview. */
async function identify() {
  try {
    const projects = await api("/v1/organization/projects", { params: { limit: 100 }, project: null });
    auth.admin = true;
    return projects.data;
  } catch (error) {
    if (error.status !== 403) throw error;
  }
  auth.admin = false;
  auth.ownProject = (await api("/v1/overview")).project_id;
  return [{ id: auth.ownProject, name: auth.ownProject }];
}

function fillProjects(projects) {
  const select = $("project");
  select.replaceChildren(
    ...(auth.admin ? [h("option", { value: "all" }, "All projects")] : []),
    ...projects.map((p) => h("option", { value: p.id }, p.name === p.id ? p.id : `${p.name} (${p.id})`)));
  select.value = auth.admin ? auth.project : auth.ownProject;
  if (select.value === "" && auth.admin) select.value = auth.project = "all";
  select.disabled = !auth.admin;
  $("role").textContent = auth.admin ? "admin key" : "project key";
  document.querySelectorAll("[data-admin]").forEach((el) => { el.hidden = !auth.admin; });
}

function showSignIn(message = "") {
  auth.key = null;
  stopPage?.();
  $("page").replaceChildren();
  $("nav").hidden = $("who").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("key").focus();
}

async function signIn() {
  const projects = await identify();
  fillProjects(projects);
  $("signin").hidden = true;
  $("nav").hidden = $("who").hidden = false;
  await route();
}

function parseHash() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...args] = path.split("/").filter(Boolean);
  return { name: PAGES[name] ? name : "overview", args, query: new URLSearchParams(query) };
}

async function route() {
  if (!auth.key) return;
  stopPage?.();
  stopPage = null;
  const { name, args, query } = parseHash();
  document.querySelectorAll("#nav a").forEach((link) => {
    link.classList.toggle("active", link.getAttribute("href") === `#/${name === "batch" ? "batches" : name}`);
  });
  const root = h("div", { class: "page", dataset: { page: name } });
  $("page").replaceChildren(root);
  if (name === "admin" && !auth.admin) {
    root.append(errorBox(new Error("The Admin page needs an admin API key.")));
    return;
  }
  try {
    stopPage = (await PAGES[name].render(root, { args, query })) || null;
  } catch (error) {
    root.append(errorBox(error));
  }
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  auth.key = $("key").value.trim();
  $("key").value = "";
  try {
    await signIn();
  } catch (error) {
    showSignIn(error.status === 401 ? "That key was not accepted." : error.message);
  }
});
$("signout").addEventListener("click", () => showSignIn());
$("project").addEventListener("change", (event) => { auth.project = event.target.value; route(); });
window.addEventListener("hashchange", route);
auth.onSignOut = () => { // a key revoked or expired while signed in (a wrong key at sign-in is told there)
  if (!$("nav").hidden) showSignIn("The key is no longer accepted: sign in again.");
};

if (auth.key) signIn().catch((error) => showSignIn(error.message));
else showSignIn();
