// agentyard's page: a client of the yard's REST API and its event streams,
// nothing more. The session lives in an HttpOnly cookie; this script only
// holds the session's CSRF token, which it sends with every change.
"use strict";

const $ = (id) => document.getElementById(id);

/** The signed-in session: {name, role, csrfToken, protectStacks}. */
let session = null;
/** Open event streams, closed on sign-out. */
const streams = { stacks: null, deployment: null };

const VIEWS = ["view-signin", "view-deploy", "view-progress", "view-success", "view-failure"];

/** Shows one view, and moves focus to its heading so keyboard and screen
 *  reader users land where the page changed. */
function show(view, { focus = true } = {}) {
  $("loading").hidden = true;
  for (const id of VIEWS) $(id).hidden = id !== view;
  const signedIn = view !== "view-signin";
  $("stacks").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  $("who").hidden = !signedIn;
  if (focus) $(view).querySelector("h1")?.focus();
}

class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** One API call; errors carry the API's own message. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session) headers["X-CSRF-Token"] = session.csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError("The yard cannot be reached. Is it running?", 0, "unreachable");
  }
  let data = null;
  if (response.status !== 204) {
    try { data = await response.json(); } catch { data = null; }
  }
  if (!response.ok) {
    if (response.status === 401 && session && path !== "/api/session") signedOut("Your session has ended. Sign in again.");
    throw new ApiError(data?.error ?? `The yard answered ${response.status}.`, response.status, data?.code);
  }
  return data;
}

// ---- signing in and out ---------------------------------------------------

function signedIn(view) {
  session = view;
  $("who").textContent = `Signed in as ${view.name}`;
  followStacks();
  const resumed = deploymentInAddress();
  if (resumed) follow(resumed.id, resumed.name);
  else showDeployForm();
}

function signedOut(message) {
  session = null;
  for (const key of Object.keys(streams)) {
    streams[key]?.close();
    streams[key] = null;
  }
  history.replaceState(null, "", location.pathname);
  $("token").value = "";
  setError("signin-error", message);
  show("view-signin");
  $("token").focus();
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) {
    setError("signin-error", "Paste a token first.");
    return;
  }
  $("signin-button").disabled = true;
  try {
    const view = await api("POST", "/api/session", { token });
    $("token").value = "";
    setError("signin-error", "");
    signedIn(view);
  } catch (error) {
    setError("signin-error", error.message);
    $("token").focus();
  } finally {
    $("signin-button").disabled = false;
  }
});

$("sign-out").addEventListener("click", async () => {
  try { await api("DELETE", "/api/session"); } catch { /* signed out either way */ }
  signedOut("");
});

function setError(id, message) {
  $(id).textContent = message;
  $(id).hidden = !message;
}

// ---- the name, checked as it is typed --------------------------------------

let checkTimer = null;
let checkSeq = 0;
let nameOk = false;

function setNameStatus(text, kind) {
  const status = $("name-status");
  status.textContent = text;
  status.className = `status ${kind ?? ""}`;
}

$("name").addEventListener("input", () => {
  nameOk = false;
  $("deploy-button").disabled = true;
  clearTimeout(checkTimer);
  const name = $("name").value.trim();
  if (!name) {
    setNameStatus("");
    return;
  }
  setNameStatus("Checking…");
  checkTimer = setTimeout(() => checkName(name), 250);
});

async function checkName(name) {
  const seq = ++checkSeq;
  try {
    const verdict = await api("GET", `/api/check/${encodeURIComponent(name)}`);
    if (seq !== checkSeq) return; // a newer check is under way
    nameOk = verdict.available;
    $("deploy-button").disabled = !nameOk;
    const shown = name.toLowerCase();
    if (verdict.available) setNameStatus(`“${shown}” is available.`, "good");
    else setNameStatus(capitalise(verdict.error ?? "That name cannot be used."), "bad");
  } catch (error) {
    if (seq === checkSeq) setNameStatus(error.message, "bad");
  }
}

function capitalise(text) {
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
}

function showDeployForm() {
  $("name").value = "";
  setNameStatus("");
  nameOk = false;
  $("deploy-button").disabled = true;
  show("view-deploy", { focus: false });
  $("name").focus();
}

$("deploy-form").addEventListener("submit", (event) => {
  event.preventDefault();
  submitDeploy();
});

// Enter deploys even while the name is still being checked (a disabled
// button would otherwise swallow it).
$("name").addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    event.preventDefault();
    clearTimeout(checkTimer);
    submitDeploy();
  }
});

async function submitDeploy() {
  const name = $("name").value.trim();
  if (!nameOk) {
    if (name) await checkName(name);
    if (!nameOk) return;
  }
  $("deploy-button").disabled = true;
  try {
    const accepted = await api("POST", "/api/deploy", { name });
    follow(accepted.deploymentId, accepted.name);
  } catch (error) {
    setNameStatus(capitalise(error.message), "bad");
    $("deploy-button").disabled = false;
    $("name").focus();
  }
}

// ---- following a deployment ------------------------------------------------

/** The deployment the address names (#deployment=ID&name=NAME), so a
 *  reloaded page picks up where it was. */
function deploymentInAddress() {
  const params = new URLSearchParams(location.hash.slice(1));
  const id = params.get("deployment");
  return id ? { id, name: params.get("name") ?? "" } : null;
}

function follow(id, name) {
  streams.deployment?.close();
  history.replaceState(null, "", `#deployment=${encodeURIComponent(id)}&name=${encodeURIComponent(name)}`);
  $("progress-name").textContent = name;
  setProgress(0, "Starting…");
  $("progress-connection").textContent = "";
  show("view-progress");

  let lost = 0;
  const open = () => {
    const source = new EventSource(`/api/status/${encodeURIComponent(id)}`);
    streams.deployment = source;
    source.addEventListener("progress", (event) => {
      lost = 0;
      $("progress-connection").textContent = "";
      const state = JSON.parse(event.data);
      setProgress(state.progress, state.currentStep);
    });
    source.addEventListener("complete", (event) => {
      source.close();
      succeeded(name, JSON.parse(event.data).url);
    });
    source.addEventListener("error", (event) => {
      if (event.data !== undefined) {
        // The deployment's own `error` event: it failed.
        source.close();
        failed(JSON.parse(event.data).message);
        return;
      }
      // The connection dropped. The browser retries by itself while it
      // can; when it gives up, find out why and start again.
      lost += 1;
      $("progress-connection").textContent = "Connection lost; reconnecting…";
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(() => recover(source), Math.min(1000 * lost, 5000));
      }
    });
  };
  const recover = async (closed) => {
    if (streams.deployment !== closed) return; // followed something else since
    try {
      const deployment = await api("GET", `/api/deployments/${encodeURIComponent(id)}`);
      if (streams.deployment !== closed) return;
      if (deployment.status === "completed") return succeeded(name, deployment.url);
      if (deployment.status === "failed") return failed(deployment.message ?? "The deployment failed.");
      if (deployment.status === "removing" || deployment.status === "removed") return failed(`Stack ${name} has been removed.`);
      open();
    } catch (error) {
      if (error.status === 401 || streams.deployment !== closed) return;
      if (error.status === 404) return failed("This deployment is not known to the yard.");
      setTimeout(() => recover(closed), 2000);
    }
  };
  open();
}

function setProgress(percent, step) {
  $("progress-bar").value = percent;
  $("progress-percent").textContent = `${percent}%`;
  $("progress-step").textContent = step;
}

function succeeded(name, url) {
  streams.deployment = null;
  history.replaceState(null, "", location.pathname);
  setProgress(100, "Done");
  const link = $("success-link");
  link.textContent = url;
  link.href = stackHref(name, url);
  show("view-success");
}

function failed(message) {
  streams.deployment = null;
  history.replaceState(null, "", location.pathname);
  $("failure-reason").textContent = message;
  show("view-failure");
}

$("another").addEventListener("click", showDeployForm);
$("retry").addEventListener("click", showDeployForm);

/** Where a link to a stack goes: straight to it, or through the portal's
 *  hand-over when stack addresses are protected. */
function stackHref(name, url) {
  return session?.protectStacks ? `/api/stacks/${encodeURIComponent(name)}/open` : url;
}

// ---- the list of stacks, live ----------------------------------------------

const STATUS_LABELS = {
  initializing: "starting",
  creating_project: "deploying",
  creating_application: "deploying",
  deploying: "deploying",
  completed: "up",
  failed: "failed",
  removing: "removing",
  removed: "removed",
};

function followStacks() {
  streams.stacks?.close();
  const source = new EventSource("/api/events");
  streams.stacks = source;
  source.addEventListener("stacks", (event) => {
    setError("stacks-error", "");
    renderStacks(JSON.parse(event.data).stacks);
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED && streams.stacks === source) {
      setError("stacks-error", "Lost the live list; reconnecting…");
      setTimeout(() => { if (streams.stacks === source && session) followStacks(); }, 2000);
    }
  });
}

function renderStacks(stacks) {
  const list = $("stacks-list");
  $("stacks-empty").hidden = stacks.length > 0;
  const items = stacks.map((stack) => {
    const item = document.createElement("li");
    item.dataset.stack = stack.name;

    const name = document.createElement("span");
    name.className = "stack-name";
    name.textContent = stack.name;

    const badge = document.createElement("span");
    // A deployed stack shows its health: up, or what happened to it.
    const deployed = stack.status === "completed";
    const health = deployed && stack.health !== "running" && stack.health !== "starting" ? stack.health : null;
    const label = health ?? STATUS_LABELS[stack.status] ?? stack.status;
    const bad = label === "failed" || ["stopped", "missing", "unhealthy"].includes(label);
    badge.className = `badge ${label === "up" ? "up" : ""} ${bad ? "failed" : ""}`;
    badge.textContent = label;
    if (health && stack.healthReason) badge.title = stack.healthReason;

    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "quiet";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete stack ${stack.name}`);
    remove.disabled = !deployed && label !== "failed";
    remove.addEventListener("click", () => confirmDelete(stack.name, remove));

    const address = document.createElement("span");
    address.className = "stack-address";
    if (stack.status === "completed") {
      const link = document.createElement("a");
      link.href = stackHref(stack.name, stack.url);
      link.textContent = stack.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      address.append(link);
    } else {
      address.textContent = stack.url;
    }
    const owner = stack.owner && session && stack.owner !== session.name ? ` · ${stack.owner}` : "";
    if (owner) address.append(owner);
    if (health && stack.healthReason) address.append(` · ${stack.healthReason}`);
    if (stack.restarts > 0) address.append(` · restarted ${stack.restarts}×`);
    item.append(name, badge, remove, address);
    return item;
  });
  // Keep focus on a Delete button that survives the redraw.
  const focused = document.activeElement?.closest?.("li")?.dataset.stack;
  list.replaceChildren(...items);
  if (focused) list.querySelector(`li[data-stack="${CSS.escape(focused)}"] button`)?.focus();
}

function confirmDelete(name, button) {
  const dialog = $("confirm");
  $("confirm-name").textContent = name;
  dialog.returnValue = "";
  dialog.addEventListener("close", async function onClose() {
    dialog.removeEventListener("close", onClose);
    if (dialog.returnValue !== "delete") {
      button.focus();
      return;
    }
    button.disabled = true;
    button.textContent = "Deleting…";
    try {
      await api("DELETE", `/api/stacks/${encodeURIComponent(name)}`);
      setError("stacks-error", "");
    } catch (error) {
      setError("stacks-error", `Cannot delete ${name}: ${error.message}`);
      button.disabled = false;
      button.textContent = "Delete";
    }
  });
  dialog.showModal();
}

// ---- start -----------------------------------------------------------------

(async () => {
  try {
    signedIn(await api("GET", "/api/session"));
  } catch (error) {
    signedOut(error.status === 401 ? "" : error.message);
  }
})();
