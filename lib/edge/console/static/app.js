// The console: sign in, the list, the details, cancel and delete.
// Every value from the API is rendered as text (see dom.js); every call goes
// to the public API with the user's token (see api.js).

import {
  API_ROOT, apiUrl, call, clearToken, listPath, loadToken, operationPath, saveToken, surfaceOf,
} from "./api.js";
import { banner, elapsed, formatTime, h, jsonText, replace, timeNode } from "./dom.js";
import {
  QUICK_FILTERS, codeName, errorInfos, isActive, metadataOf, percentOf, responseOf, stateOf,
} from "./model.js";

const POLL_MS = 1000; // while anything shown runs (the contract asks for 2 s at most)
const MAX_PAGE_SIZE = 1000; // the API's cap
const FLASH_MS = 6000;

const $ = (id) => document.getElementById(id);
const views = { signin: $("signin-view"), list: $("list-view"), detail: $("detail-view") };

const list = {
  parent: "operations",
  filter: "",
  pageSize: 100,
  rows: new Map(), // name -> row parts (see makeRow)
  nextPageToken: "",
  generation: 0,
  timer: 0,
  loaded: false,
  updated: null,
  error: "",
};
const detail = { name: "", op: null, shown: "", generation: 0, timer: 0, parts: null };
const dialogs = { target: "", opener: null };
let flashTimer = 0;

// --- views -----------------------------------------------------------------------------

function showView(which) {
  for (const [name, element] of Object.entries(views)) element.hidden = name !== which;
  $("session").hidden = which === "signin";
  if (which !== "list") clearTimeout(list.timer);
  if (which !== "detail") {
    clearTimeout(detail.timer);
    detail.generation += 1;
  }
}

/** Shows the view the URL's fragment names: "#<operation name>" or the list. */
function route() {
  if (!loadToken()) {
    showSignIn("");
    return;
  }
  $("who").textContent = principalOf(loadToken());
  const name = nameFromHash();
  if (name) openDetail(name);
  else openList();
}

function nameFromHash() {
  const fragment = location.hash.slice(1);
  if (!fragment) return "";
  try {
    return decodeURIComponent(fragment);
  } catch {
    return fragment;
  }
}

function hashOf(name) {
  return `#${encodeURI(name)}`;
}

/** The token's email or subject when it is a JWT (for display only; never checked here). */
function principalOf(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return "Signed in";
  try {
    const claims = JSON.parse(atob(parts[1].replace(/-/g, "+").replace(/_/g, "/")));
    const who = claims.email || claims.sub;
    return typeof who === "string" ? who : "Signed in";
  } catch {
    return "Signed in";
  }
}

function showSignIn(message) {
  showView("signin");
  resetList();
  detail.name = "";
  document.title = "Sign in · Operations console";
  banner($("signin-error"), message);
  $("token").focus();
}

/** A 401 anywhere ends the session and shows why; true when it did. */
function signedOut(error) {
  if (error && error.status === 401) {
    clearToken();
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
    showSignIn(error.describe());
    return true;
  }
  return false;
}

function flash(message) {
  clearTimeout(flashTimer);
  banner($("flash"), message);
  flashTimer = setTimeout(() => banner($("flash"), ""), FLASH_MS);
}

// --- sign in and out ---------------------------------------------------------------------

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim().replace(/^bearer\s+/i, "");
  if (!token) {
    banner($("signin-error"), "Paste an access token first.");
    return;
  }
  if (/\s/.test(token)) {
    banner($("signin-error"), "An access token has no spaces or line breaks in it.");
    return;
  }
  saveToken(token);
  $("token").value = "";
  banner($("signin-error"), "");
  route();
});

$("sign-out").addEventListener("click", () => {
  clearToken();
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  showSignIn("Signed out. The token is forgotten.");
});

// --- the list ----------------------------------------------------------------------------

function resetList() {
  clearTimeout(list.timer);
  list.generation += 1;
  list.rows.clear();
  $("rows").replaceChildren();
  list.loaded = false;
  list.nextPageToken = "";
  renderListChrome();
}

function openList() {
  showView("list");
  document.title = "Operations console";
  if (!list.loaded) loadList();
  else refreshList();
}

function readQuery() {
  list.parent = $("parent").value.trim();
  list.filter = $("filter").value.trim();
  const size = Number($("page-size").value);
  list.pageSize = Number.isInteger(size) && size > 0 ? Math.min(size, MAX_PAGE_SIZE) : 100;
  for (const radio of document.querySelectorAll('input[name="quick"]')) {
    radio.checked = QUICK_FILTERS[radio.value] === list.filter;
  }
}

$("query-form").addEventListener("submit", (event) => {
  event.preventDefault();
  readQuery();
  resetList();
  loadList();
});

for (const radio of document.querySelectorAll('input[name="quick"]')) {
  radio.addEventListener("change", () => {
    if (!radio.checked) return;
    $("filter").value = QUICK_FILTERS[radio.value];
    readQuery();
    resetList();
    loadList();
  });
}

$("more").addEventListener("click", () => loadList({ more: true }));

function showListError(message) {
  list.error = message;
  banner($("list-error"), message);
}

/** The first page (or, with more, the next one) of the parent under the filter. */
async function loadList({ more = false } = {}) {
  let path;
  try {
    path = listPath(list.parent);
  } catch (error) {
    showListError(error.message);
    return;
  }
  clearTimeout(list.timer);
  const generation = more ? list.generation : ++list.generation;
  $("more").disabled = true;
  if (!more) setStatus("Loading…");
  try {
    const data = await call("GET", path, {
      query: {
        pageSize: String(list.pageSize),
        filter: list.filter,
        pageToken: more ? list.nextPageToken : "",
      },
    });
    if (generation !== list.generation) return;
    showListError("");
    placeRows(data.operations, { append: more });
    list.nextPageToken = typeof data.nextPageToken === "string" ? data.nextPageToken : "";
    list.loaded = true;
    list.updated = new Date();
  } catch (error) {
    if (generation !== list.generation || signedOut(error)) return;
    showListError(error.describe());
  } finally {
    if (generation === list.generation) {
      $("more").disabled = false;
      renderListChrome();
      scheduleListPoll();
    }
  }
}

/** Everything loaded so far again, in one request: states, progress and new arrivals. */
async function refreshList() {
  let path;
  try {
    path = listPath(list.parent);
  } catch {
    return;
  }
  clearTimeout(list.timer);
  const generation = list.generation;
  const size = Math.min(MAX_PAGE_SIZE, Math.max(list.pageSize, list.rows.size));
  try {
    const data = await call("GET", path, {
      query: { pageSize: String(size), filter: list.filter },
    });
    if (generation !== list.generation) return;
    showListError("");
    placeRows(data.operations, { append: false });
    list.nextPageToken = typeof data.nextPageToken === "string" ? data.nextPageToken : "";
    list.updated = new Date();
  } catch (error) {
    if (generation !== list.generation || signedOut(error)) return;
    showListError(error.describe());
  } finally {
    if (generation === list.generation) {
      renderListChrome();
      scheduleListPoll();
    }
  }
}

function runningCount() {
  let count = 0;
  for (const row of list.rows.values()) if (isActive(row.op)) count += 1;
  return count;
}

/** Polls while the list is shown and something in it is queued or running. */
function scheduleListPoll() {
  clearTimeout(list.timer);
  if (!document.hidden && !views.list.hidden && loadToken() && runningCount() > 0) {
    list.timer = setTimeout(refreshList, POLL_MS);
  }
}

function setStatus(text) {
  $("list-status").textContent = text;
}

function renderListChrome() {
  const count = list.rows.size;
  const running = runningCount();
  $("list-caption").textContent = `Operations under ${list.parent || "(no parent)"}`;
  $("empty").hidden = !list.loaded || count > 0 || Boolean(list.error);
  $("more").hidden = !list.nextPageToken;
  if (!list.loaded) return;
  const shown = `${count}${list.nextPageToken ? "+" : ""} operation${count === 1 ? "" : "s"}`;
  const when = list.updated ? ` · updated ${formatTime(list.updated).slice(11)}` : "";
  setStatus(running > 0
    ? `${shown} · ${running} active, refreshing every second${when}`
    : `${shown} · nothing running${when}`);
}

/** Puts operations in the table in API order (newest first), reusing rows by name. */
function placeRows(operations, { append }) {
  const body = $("rows");
  const ops = Array.isArray(operations) ? operations : [];
  const seen = new Set();
  let previous = append ? body.lastElementChild : null;
  const fragment = append ? document.createDocumentFragment() : null;
  for (const op of ops) {
    if (!op || typeof op.name !== "string" || seen.has(op.name)) continue;
    seen.add(op.name);
    let row = list.rows.get(op.name);
    if (append && row) continue;
    if (!row) {
      row = makeRow(op.name);
      list.rows.set(op.name, row);
    }
    updateRow(row, op);
    if (append) {
      fragment.append(row.tr);
      continue;
    }
    const expected = previous ? previous.nextElementSibling : body.firstElementChild;
    if (row.tr !== expected) body.insertBefore(row.tr, expected);
    previous = row.tr;
  }
  if (append) {
    body.append(fragment);
    return;
  }
  for (const [name, row] of list.rows) {
    if (!seen.has(name)) {
      row.tr.remove();
      list.rows.delete(name);
    }
  }
}

function progressBar(label) {
  const fill = h("span", { class: "fill" });
  const bar = h("div", {
    class: "bar", role: "progressbar", "aria-label": label,
    "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0",
  }, fill);
  const percent = h("span", { class: "pct" }, "0%");
  return { bar, fill, percent };
}

function setProgress(parts, op) {
  const value = percentOf(op);
  if (parts.bar.getAttribute("aria-valuenow") !== String(value)) {
    parts.bar.setAttribute("aria-valuenow", String(value));
    parts.fill.style.width = `${value}%`; // CSSOM, which the CSP allows (no style attribute)
    parts.percent.textContent = `${value}%`;
  }
  parts.bar.dataset.state = stateOf(op).toLowerCase();
}

function statusLine(op) {
  const meta = metadataOf(op);
  const message = typeof meta.statusMessage === "string" ? meta.statusMessage : "";
  if (!op.done && meta.requestedCancellation === true) {
    return message ? `${message} · cancel requested` : "Cancel requested";
  }
  return message;
}

/** The full name as link text: the parent muted, the id strong, line breaks after slashes. */
function nameLink(name) {
  const cut = name.lastIndexOf("/") + 1;
  const prefix = [];
  for (const part of name.slice(0, cut).split(/(?<=\/)/)) {
    if (part) prefix.push(h("span", { class: "segment" }, part), h("wbr"));
  }
  return h("a", { href: hashOf(name), class: "op-name" },
    h("span", { class: "prefix" }, prefix), h("span", { class: "id" }, name.slice(cut)));
}

function makeRow(name) {
  const row = { name, op: null, shown: "" };
  row.kind = h("td", { class: "opt kind" });
  row.badge = h("span", { class: "badge" });
  row.progress = progressBar("Progress");
  row.message = h("span", { class: "message" });
  row.created = h("td", { class: "opt time" });
  row.ended = h("td", { class: "opt time" });
  row.cancel = h("button", {
    type: "button", class: "secondary small",
    onclick: () => openCancel(name, row.cancel),
  }, "Cancel");
  row.tr = h("tr", {},
    h("th", { scope: "row", class: "name" }, nameLink(name)),
    row.kind,
    h("td", { class: "state" }, row.badge),
    h("td", { class: "progress-cell" },
      h("div", { class: "progress" }, row.progress.bar, row.progress.percent), row.message),
    row.created,
    row.ended,
    h("td", { class: "row-actions" }, row.cancel));
  return row;
}

function updateRow(row, op) {
  row.op = op;
  const key = JSON.stringify(op);
  if (key === row.shown) return;
  row.shown = key;
  const meta = metadataOf(op);
  const state = stateOf(op);
  row.kind.textContent = typeof meta.kind === "string" ? meta.kind : "";
  row.badge.textContent = state;
  row.badge.className = `badge ${state.toLowerCase()}`;
  setProgress(row.progress, op);
  row.message.textContent = statusLine(op);
  row.created.replaceChildren(timeNode(meta.createTime));
  row.ended.replaceChildren(timeNode(meta.endTime));
  row.cancel.hidden = !isActive(op);
}

// --- details -----------------------------------------------------------------------------

function openDetail(name) {
  showView("detail");
  document.title = `${name} · Operations console`;
  if (detail.name !== name || !detail.parts) {
    detail.name = name;
    detail.op = null;
    detail.shown = "";
    detail.parts = buildDetail(name);
  }
  loadDetail();
}

async function loadDetail() {
  const name = detail.name;
  clearTimeout(detail.timer);
  const generation = ++detail.generation;
  let path;
  try {
    path = operationPath(name);
  } catch (error) {
    banner(detail.parts.error, error.message);
    return;
  }
  try {
    const op = await call("GET", path);
    if (generation !== detail.generation) return;
    banner(detail.parts.error, "");
    detail.op = op;
    renderDetail(op);
    const row = list.rows.get(name);
    if (row) updateRow(row, op);
  } catch (error) {
    if (generation !== detail.generation || signedOut(error)) return;
    banner(detail.parts.error, error.describe());
  } finally {
    if (generation === detail.generation && !document.hidden && detail.op && isActive(detail.op)) {
      detail.timer = setTimeout(loadDetail, POLL_MS);
    }
  }
}

function shellQuote(text) {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

function commandBlock(label, text) {
  // Short words never break (a line break inside "--token" would read as "-" "-token").
  const words = text.split(" ").map((word, i) => [i ? " " : "",
    word.length <= 40 ? h("span", { class: "word" }, word) : word]);
  const code = h("code", {}, words);
  const button = h("button", { type: "button", class: "secondary small" }, `Copy ${label}`);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(code);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      button.textContent = "Selected: press Ctrl+C";
    }
    setTimeout(() => { button.textContent = `Copy ${label}`; }, 2000);
  });
  return h("div", { class: "command" }, h("pre", { tabindex: "0" }, code), button);
}

/** The parts of the detail view that only depend on the name (built once per name). */
function buildDetail(name) {
  const view = views.detail;
  const parts = {};
  parts.cancel = h("button", { type: "button", class: "danger", hidden: true }, "Cancel");
  parts.cancel.addEventListener("click", () => openCancel(name, parts.cancel));
  parts.remove = h("button", { type: "button", class: "secondary" }, "Delete");
  parts.remove.addEventListener("click", () => openDelete(name, parts.remove));
  parts.error = h("p", { class: "banner error", role: "alert", hidden: true });
  parts.body = h("div", { class: "detail-grid" }, h("p", { class: "muted" }, "Loading…"));

  let commands;
  try {
    const endpoint = API_ROOT.href.replace(/\/$/, "");
    const surface = surfaceOf(name);
    commands = h("section", { class: "card commands", "aria-labelledby": "commands-title" },
      h("h2", { id: "commands-title" }, "The same from a shell"),
      h("p", { class: "hint" }, "Set TOKEN first, e.g. ",
        h("code", {}, "export TOKEN=$(gcloud auth print-access-token)"), "."),
      commandBlock("curl", `curl -sS -H "Authorization: Bearer $TOKEN" ${shellQuote(apiUrl(operationPath(name)))}`),
      commandBlock("CLI", `python -m lib.cli get ${shellQuote(name)} --endpoint ${shellQuote(endpoint)}` +
        `${surface === "v1" ? "" : ` --surface ${surface}`} --token "$TOKEN"`));
  } catch {
    commands = null;
  }
  replace(view,
    h("a", { href: "#", class: "back" }, "← All operations"),
    h("div", { class: "detail-head" },
      h("h1", { id: "detail-title", class: "mono wrap" }, name),
      h("div", { class: "actions" }, parts.cancel, parts.remove)),
    parts.error,
    parts.body,
    commands);
  return parts;
}

function field(label, value) {
  return [h("dt", {}, label), h("dd", {}, value === undefined || value === "" ? h("span", { class: "muted" }, "—") : value)];
}

function sortedKeys(object) {
  return Object.fromEntries(Object.entries(object).sort(([a], [b]) => a.localeCompare(b)));
}

function jsonBlock(value) {
  return h("pre", { class: "json", tabindex: "0" }, jsonText(value));
}

function summarySection(op) {
  const meta = metadataOf(op);
  const state = stateOf(op);
  const progress = progressBar("Progress");
  setProgress(progress, op);
  return h("section", { class: "card", "aria-labelledby": "summary-title" },
    h("h2", { id: "summary-title" }, "Summary"),
    h("dl", { class: "fields" },
      field("State", h("span", { class: `badge ${state.toLowerCase()}` }, state)),
      field("Progress", h("div", { class: "progress" }, progress.bar, progress.percent)),
      field("Status", statusLine(op)),
      field("Kind", meta.kind),
      field("Verb", meta.verb),
      field("Target", meta.target === undefined ? undefined : h("span", { class: "mono wrap" }, String(meta.target))),
      field("Attempt", meta.attempt === undefined ? undefined : String(meta.attempt)),
      field("Created", timeNode(meta.createTime)),
      field("Updated", timeNode(meta.updateTime)),
      field("Ended", timeNode(meta.endTime)),
      meta.deadline ? field("Deadline", timeNode(meta.deadline)) : null));
}

function timelineSection(op) {
  const meta = metadataOf(op);
  if (!meta.cancelRequestTime && !meta.cancelAcknowledgeTime && meta.requestedCancellation !== true) {
    return null;
  }
  const requested = meta.cancelRequestTime;
  const step = (title, time, ...extra) => h("li", { class: time ? "done" : "pending" },
    h("span", { class: "dot", "aria-hidden": "true" }),
    h("div", {}, h("strong", {}, title), " ", timeNode(time),
      time && requested && time !== requested ? h("span", { class: "muted" }, ` (+${elapsed(requested, time)})`) : null,
      ...extra));
  return h("section", { class: "card", "aria-labelledby": "timeline-title" },
    h("h2", { id: "timeline-title" }, "Cancellation"),
    h("ol", { class: "timeline" },
      step("Requested", requested,
        meta.cancelRequestedBy ? h("div", { class: "muted" }, "by ", String(meta.cancelRequestedBy)) : null,
        meta.cancelReason !== undefined ? h("div", { class: "reason" }, "Reason: ", h("q", {}, String(meta.cancelReason))) : null),
      step("Acknowledged", meta.cancelAcknowledgeTime),
      step("Ended", meta.endTime)));
}

function errorSection(op) {
  if (!op.error) return null;
  const code = Number(op.error.code || 0);
  const infos = errorInfos(op.error).map((info) => h("div", { class: "error-info" },
    h("h3", {}, "ErrorInfo"),
    h("dl", { class: "fields" },
      field("Reason", info.reason === undefined ? undefined : h("span", { class: "mono" }, String(info.reason))),
      field("Domain", info.domain === undefined ? undefined : String(info.domain)),
      ...Object.entries(info.metadata && typeof info.metadata === "object" ? info.metadata : {})
        .map(([key, value]) => field(key, jsonText(value))))));
  return h("section", { class: "card", "aria-labelledby": "error-title" },
    h("h2", { id: "error-title" }, "Error"),
    h("p", {}, h("span", { class: "code" }, `${code} ${codeName(code)}`), " ",
      typeof op.error.message === "string" ? op.error.message : ""),
    infos);
}

function renderDetail(op) {
  const key = JSON.stringify(op);
  detail.parts.cancel.hidden = !isActive(op);
  if (key === detail.shown) return;
  detail.shown = key;
  const response = responseOf(op);
  replace(detail.parts.body,
    summarySection(op),
    timelineSection(op),
    errorSection(op),
    response === undefined ? null : h("section", { class: "card", "aria-labelledby": "response-title" },
      h("h2", { id: "response-title" }, "Response"), jsonBlock(response)),
    h("section", { class: "card wide", "aria-labelledby": "metadata-title" },
      h("h2", { id: "metadata-title" }, "Metadata"), jsonBlock(sortedKeys(metadataOf(op)))));
}

// --- cancel and delete ------------------------------------------------------------------

function openDialog(dialog, name, opener) {
  dialogs.target = name;
  dialogs.opener = opener;
  dialog.querySelector(".mono").textContent = name;
  banner(dialog.querySelector('[role="alert"]'), "");
  dialog.showModal();
}

function openCancel(name, opener) {
  $("reason").value = "";
  openDialog($("cancel-dialog"), name, opener);
  $("reason").focus();
}

function openDelete(name, opener) {
  openDialog($("delete-dialog"), name, opener);
}

for (const dialog of document.querySelectorAll("dialog")) {
  dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    if (dialogs.opener && dialogs.opener.isConnected && !dialogs.opener.hidden) dialogs.opener.focus();
  });
}

/** Latin-1 printable text goes in the header; anything else in $requestReason. */
function reasonParameters(reason) {
  if (!reason) return { headers: {}, query: {} };
  if (/^[\x20-\x7e\xa0-\xff]*$/.test(reason)) {
    return { headers: { "X-Goog-Request-Reason": reason }, query: {} };
  }
  return { headers: {}, query: { $requestReason: reason } };
}

/** A confirm dialog's form ("cancel" or "delete"): its submit button is off while
 * ``action(name, dialog)`` runs on the dialog's operation; an error shows in the dialog. */
function onDialogSubmit(kind, action) {
  $(`${kind}-form`).addEventListener("submit", async (event) => {
    event.preventDefault();
    const dialog = $(`${kind}-dialog`);
    const name = dialogs.target;
    const submit = event.submitter || dialog.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      await action(name, dialog);
    } catch (error) {
      if (!signedOut(error)) {
        banner($(`${kind}-error`), error instanceof Error && error.describe ? error.describe() : String(error.message));
      }
    } finally {
      submit.disabled = false;
    }
  });
}

onDialogSubmit("cancel", async (name, dialog) => {
  const { headers, query } = reasonParameters($("reason").value.trim());
  await call("POST", `${operationPath(name)}:cancel`, { headers, query, body: {} });
  dialog.close();
  flash(`Cancel requested for ${name}.`);
  if (!views.list.hidden) refreshList();
  if (!views.detail.hidden && detail.name === name) loadDetail();
});

onDialogSubmit("delete", async (name, dialog) => {
  await call("DELETE", operationPath(name));
  dialogs.opener = null;
  dialog.close();
  const row = list.rows.get(name);
  if (row) {
    row.tr.remove();
    list.rows.delete(name);
  }
  detail.name = "";
  detail.parts = null;
  location.hash = "";
  flash(`Deleted ${name}.`);
});

// --- start --------------------------------------------------------------------------------

window.addEventListener("hashchange", route);
// A tab in the background stops polling; it catches up when it is shown again.
document.addEventListener("visibilitychange", () => {
  if (document.hidden || !loadToken()) return;
  if (!views.list.hidden && list.loaded) refreshList();
  if (!views.detail.hidden && detail.name) loadDetail();
});
route();
