// The /v1 API as the signed-in key sees it. The key lives in sessionStorage (this tab only).
const KEY = "broker.key";
const PROJECT = "broker.project";

export class ApiError extends Error {
  constructor(status, error) {
    super(error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = error?.code;
  }
}

export const auth = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); },
  get project() { return sessionStorage.getItem(PROJECT) || "all"; },
  set project(value) { sessionStorage.setItem(PROJECT, value); },
  admin: false,
  ownProject: null, // a project key's project
  onSignOut: () => {},
};

/** The project a per-project call acts on: the chosen one (admin), or the key's own. */
export function actingProject() {
  if (!auth.admin) return auth.ownProject;
  return auth.project === "all" ? null : auth.project;
}

/** Path plus query string; undefined, null and "" values are left out. */
export function url(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(name, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

function headers(project, extra = {}) {
  const all = { Authorization: `Bearer ${auth.key}`, ...extra };
  if (project) all["OpenAI-Project"] = project;
  return all;
}

/** Call the API; JSON back, or an ApiError carrying OpenAI's error message. A 401 signs out. */
export async function api(path, { method = "GET", params, body, project = actingProject() } = {}) {
  const init = { method, headers: headers(auth.admin ? project : null) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url(path, params), init);
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    if (response.status === 401) auth.onSignOut();
    throw new ApiError(response.status, data?.error);
  }
  return data;
}

/** Fetch a file's bytes with the key and hand them to the browser as a download. */
export async function download(fileId, name, project) {
  const response = await fetch(`/v1/files/${fileId}/content`, { headers: headers(auth.admin ? project : null) });
  if (!response.ok) throw new ApiError(response.status, (await response.json()).error);
  saveBlob(await response.blob(), name);
}

export function saveBlob(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

/** The ``project_id`` query of reads that can span projects: an admin's choice ("all" or one); none for a project key. */
export function scope() {
  return auth.admin ? { project_id: auth.project } : {};
}
