// The public Operations API, called with the user's own bearer token.
// The token lives in sessionStorage only and travels in the Authorization
// header only: never in a URL, never in localStorage.

const TOKEN_KEY = "operations-console.token";

/** The API root: the page's own directory, so a path prefix in front still works. */
export const API_ROOT = new URL("./", document.baseURI);

export function loadToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function saveToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: nothing was kept
  }
}

/** A refused or failed call: the HTTP status and the API's own message (AIP-193). */
export class ApiError extends Error {
  constructor(status, statusName, message, reason) {
    super(message);
    this.status = status;
    this.statusName = statusName;
    this.reason = reason;
  }

  /** "PERMISSION_DENIED: Permission ... denied ..." */
  describe() {
    return this.statusName ? `${this.statusName}: ${this.message}` : this.message;
  }
}

const ONE = "[^/]+";
const NAME_SURFACES = [
  [new RegExp(`^operations/.+$`), "v1"],
  [new RegExp(`^projects/${ONE}/locations/${ONE}/operations/${ONE}$`), "v1"],
  [new RegExp(`^projects/${ONE}/operations/${ONE}$`), "v3beta1"],
];

function encodePath(path) {
  return path.split("/").map(encodeURIComponent).join("/");
}

/** The surface ("v1" or "v3beta1") that serves an operation name. */
export function surfaceOf(name) {
  for (const [pattern, surface] of NAME_SURFACES) {
    if (pattern.test(name)) return surface;
  }
  throw new Error(`Not an operation name this service serves: ${name}`);
}

/** The API path (relative to API_ROOT) of an operation. */
export function operationPath(name) {
  return `${surfaceOf(name)}/${encodePath(name)}`;
}

/** The List path of a parent. */
export function listPath(parent) {
  if (parent === "operations") return "v1/operations";
  if (new RegExp(`^projects/${ONE}/locations/${ONE}$`).test(parent)) {
    return `v1/${encodePath(parent)}/operations`;
  }
  if (new RegExp(`^projects/${ONE}$`).test(parent)) {
    return `v3beta1/${encodePath(parent)}/operations`;
  }
  throw new Error(
    "Parent must be operations, projects/PROJECT or projects/PROJECT/locations/LOCATION.");
}

/** The absolute URL of an API path (for the copyable commands). */
export function apiUrl(path) {
  return new URL(path, API_ROOT).href;
}

function errorInfoReason(error) {
  for (const detail of (error && Array.isArray(error.details) ? error.details : [])) {
    if (detail && typeof detail.reason === "string") return detail.reason;
  }
  return "";
}

/**
 * One API call; resolves to the JSON answer, rejects with an ApiError.
 * @param {string} method
 * @param {string} path relative to API_ROOT
 * @param {{query?: Object<string, string>, headers?: Object<string, string>, body?: any}} options
 */
export async function call(method, path, { query = {}, headers = {}, body } = {}) {
  const url = new URL(path, API_ROOT);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const init = {
    method,
    headers: { Accept: "application/json", ...headers },
    cache: "no-store",
    credentials: "omit",
    redirect: "error",
    referrerPolicy: "no-referrer",
  };
  const token = loadToken();
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new ApiError(0, "UNAVAILABLE", `The service could not be reached (${error.message}).`, "");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && typeof data === "object" ? data.error : null;
    throw new ApiError(
      response.status,
      (error && error.status) || `HTTP ${response.status}`,
      (error && error.message) || `The service answered HTTP ${response.status}.`,
      errorInfoReason(error));
  }
  return data || {};
}
