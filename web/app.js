// agentyard's page: a client of the yard's REST API and its event streams,
// nothing more. The session lives in an HttpOnly cookie; this script only
// holds the session's CSRF token, which it sends with every change.
"use strict";

const $ = (id) => document.getElementById(id);

/** The signed-in session: {name, role, csrfToken, protectStacks}. */
let session = null;
/** Open event streams and the questions' WebSocket, closed on sign-out. */
const streams = { stacks: null, deployment: null, questions: null };

const VIEWS = ["view-signin", "view-deploy", "view-progress", "view-success", "view-failure"];

/** Shows one view, and moves focus to its heading so keyboard and screen
 *  reader users land where the page changed (unless the view is on a tab
 *  not shown). */
function show(view, { focus = true } = {}) {
  $("loading").hidden = true;
  for (const id of VIEWS) $(id).hidden = id !== view;
  const signedIn = view !== "view-signin";
  $("tabs").hidden = !signedIn;
  $("panel-stacks").hidden = !signedIn || tab !== "stacks";
  $("panel-agents").hidden = !signedIn || tab !== "agents";
  $("sign-out").hidden = !signedIn;
  $("who").hidden = !signedIn;
  if (focus && !$(view).closest("[hidden]")) $(view).querySelector("h1")?.focus();
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
  if (!response.ok) throw await refusal(response, path);
  if (response.status === 204) return null;
  try { return await response.json(); } catch { return null; }
}

/** The error a refused call carries, from the API's `{error, code}` body;
 *  an ended session signs the page out. */
async function refusal(response, path) {
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (response.status === 401 && session && path !== "/api/session") signedOut("Your session has ended. Sign in again.");
  return new ApiError(data?.error ?? `The yard answered ${response.status}.`, response.status, data?.code);
}

// ---- signing in and out ---------------------------------------------------

function signedIn(view) {
  session = view;
  $("who").textContent = `Signed in as ${view.name}`;
  followStacks();
  followQuestions();
  const resumed = deploymentInAddress();
  if (resumed) follow(resumed.id, resumed.name);
  else showDeployForm();
  selectTab(tab);
  if (tab === "agents") $("questions-title").focus();
}

function signedOut(message) {
  session = null;
  for (const key of Object.keys(streams)) {
    streams[key]?.close();
    streams[key] = null;
  }
  forgetAgents();
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

// ---- tabs: stacks and agents -----------------------------------------------

const TABS = ["stacks", "agents"];
/** The tab shown: "stacks" or "agents" (which the address can name, so a
 *  bookmark opens it). */
let tab = location.hash === "#agents" ? "agents" : "stacks";

/** Shows tab `name`; the agents list is polled only while it is shown. */
function selectTab(name, { focus = false } = {}) {
  if (tab === "agents" && name !== "agents") closeQuestion();
  tab = name;
  for (const key of TABS) {
    const control = $(`tab-${key}`);
    control.setAttribute("aria-selected", String(key === name));
    control.tabIndex = key === name ? 0 : -1;
    $(`panel-${key}`).hidden = !session || key !== name;
  }
  if (focus) $(`tab-${name}`).focus();
  // A deployment being followed keeps its own address.
  if (!deploymentInAddress()) history.replaceState(null, "", name === "agents" ? "#agents" : location.pathname);
  pollAgents();
}

for (const key of TABS) $(`tab-${key}`).addEventListener("click", () => selectTab(key));

// Arrow keys, Home and End move between the tabs, as in any tab list.
$("tabs").addEventListener("keydown", (event) => {
  const at = TABS.indexOf(tab);
  const next = {
    ArrowRight: TABS[(at + 1) % TABS.length],
    ArrowLeft: TABS[(at + TABS.length - 1) % TABS.length],
    Home: TABS[0],
    End: TABS[TABS.length - 1],
  }[event.key];
  if (!next) return;
  event.preventDefault();
  selectTab(next, { focus: true });
});

/** How long ago `time` (RFC 3339) was, in words. */
function ago(time) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(time)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} days ago`;
}

/** How long until `deadline` (RFC 3339), in words. */
function timeLeft(deadline) {
  const seconds = Math.round((Date.parse(deadline) - Date.now()) / 1000);
  if (seconds <= 0) return "time is up";
  if (seconds < 60) return `${seconds} s left`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s left`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min left`;
}

/** A new element with a class and text. */
function element(tag, className, text) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = text;
  return made;
}

function makeButton(text, className, label) {
  const made = element("button", className, text);
  made.type = "button";
  if (label) made.setAttribute("aria-label", label);
  return made;
}

function setStatus(paragraph, text, kind) {
  paragraph.textContent = text;
  paragraph.className = `status ${kind ?? ""}`;
  paragraph.hidden = !text;
}

/** Asks the person to confirm `action`; resolves to whether they did. */
function confirmAction(title, text, action, { danger = false } = {}) {
  const dialog = $("agent-confirm");
  $("agent-confirm-title").textContent = title;
  $("agent-confirm-text").textContent = text;
  $("agent-confirm-ok").textContent = action;
  $("agent-confirm-ok").className = danger ? "danger" : "";
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
    dialog.showModal();
  });
}

// ---- the agents, polled while their tab is shown ---------------------------

/** How often the agents list is fetched while shown. */
const AGENTS_EVERY_MS = 2000;
/** How many lines of an agent's log are kept on the page. */
const LOG_LINES = 300;
const LIVE = ["starting", "running"];
const MERGEABLE = ["running", "exited", "stopped"];

/** Each agent shown: id → its list item and the parts that change. */
const agentItems = new Map();
let agentsTimer = null;
let agentsSeq = 0;

function pollAgents() {
  clearTimeout(agentsTimer);
  agentsTimer = null;
  const seq = ++agentsSeq;
  if (!session || tab !== "agents" || document.hidden) return;
  loadAgents().finally(() => {
    if (seq === agentsSeq && session && tab === "agents" && !document.hidden) {
      agentsTimer = setTimeout(pollAgents, AGENTS_EVERY_MS);
    }
  });
}

// A phone's page in the background asks nothing; back in front, at once.
document.addEventListener("visibilitychange", pollAgents);

async function loadAgents() {
  try {
    const { agents } = await api("GET", "/api/agents");
    setError("agents-error", "");
    renderAgents(agents);
  } catch (error) {
    if (error.status !== 401) setError("agents-error", `Cannot list the agents: ${error.message}`);
  }
}

/** Forgets every agent and question shown: the person signed out. */
function forgetAgents() {
  pollAgents(); // stops: nobody is signed in
  for (const entry of agentItems.values()) entry.log?.abort();
  agentItems.clear();
  $("agents-list").replaceChildren();
  $("agents-empty").hidden = false;
  setError("agents-error", "");
  forgetQuestions();
}

/** Updates the list in place, so open logs and diffs and the keyboard
 *  focus survive each poll. */
function renderAgents(agents) {
  const list = $("agents-list");
  $("agents-empty").hidden = agents.length > 0;
  const shown = new Set(agents.map((agent) => agent.id));
  for (const [id, entry] of agentItems) {
    if (shown.has(id)) continue;
    entry.log?.abort();
    entry.item.remove();
    agentItems.delete(id);
  }
  agents.forEach((agent, index) => {
    let entry = agentItems.get(agent.id);
    if (!entry) {
      entry = agentItem(agent.id);
      agentItems.set(agent.id, entry);
    }
    updateAgent(entry, agent);
    if (list.children[index] !== entry.item) list.insertBefore(entry.item, list.children[index] ?? null);
  });
}

function agentItem(id) {
  const item = element("li", "agent");
  item.dataset.agent = id;
  const head = element("div", "item-head");
  const name = element("span", "agent-id", id);
  const badge = element("span", "badge");
  const age = element("span", "age");
  head.append(name, badge, age);
  const task = element("p", "agent-task");
  const meta = element("p", "agent-meta");
  const branch = element("code");
  const details = element("span");
  meta.append(branch, details);

  const actions = element("div", "agent-actions");
  const log = makeButton("Log", "quiet", `Log of agent ${id}`);
  const diff = makeButton("Diff", "quiet", `Diff of agent ${id}`);
  const merge = makeButton("Merge", "quiet", `Merge agent ${id}`);
  const stop = makeButton("Stop", "quiet", `Stop agent ${id}`);
  log.setAttribute("aria-expanded", "false");
  diff.setAttribute("aria-expanded", "false");
  log.setAttribute("aria-controls", `log-${id}`);
  diff.setAttribute("aria-controls", `diff-${id}`);
  actions.append(log, diff, merge, stop);
  const status = element("p", "status");
  status.setAttribute("aria-live", "polite");
  status.hidden = true;

  const logPanel = element("div");
  logPanel.id = `log-${id}`;
  logPanel.hidden = true;
  const logText = element("pre", "log");
  logText.tabIndex = 0;
  logText.setAttribute("aria-label", `Log of agent ${id}`);
  const logNote = element("p", "note hint");
  logPanel.append(logText, logNote);

  const diffPanel = element("div");
  diffPanel.id = `diff-${id}`;
  diffPanel.hidden = true;
  const diffNote = element("p", "note hint");
  const commits = element("ul", "commits");
  const files = element("ul", "files");
  const patch = element("pre", "diff");
  patch.tabIndex = 0;
  patch.setAttribute("aria-label", `Changes of agent ${id}`);
  diffPanel.append(diffNote, commits, files, patch);

  item.append(head, task, meta, actions, status, logPanel, diffPanel);
  const entry = {
    id, item, badge, age, task, branch, details, log: null, status, stop, merge,
    logButton: log, logPanel, logText, logNote,
    diffButton: diff, diffPanel, diffNote, commits, files, patch,
  };
  log.addEventListener("click", () => toggleLog(entry));
  diff.addEventListener("click", () => toggleDiff(entry));
  stop.addEventListener("click", () => stopAgent(entry));
  merge.addEventListener("click", () => mergeAgent(entry));
  return entry;
}

function updateAgent(entry, agent) {
  const bad = agent.status === "failed" || (agent.status === "exited" && agent.exitCode);
  entry.badge.className = `badge ${agent.status === "running" ? "up" : ""} ${bad ? "failed" : ""}`;
  entry.badge.textContent = agent.status;
  entry.age.textContent = ago(agent.createdAt);
  entry.age.title = new Date(agent.createdAt).toLocaleString();
  entry.task.textContent = agent.task;
  entry.branch.textContent = agent.branch;
  const details = [];
  if (agent.owner && session && agent.owner !== session.name) details.push(agent.owner);
  if (agent.exitCode !== undefined && agent.exitCode !== null) details.push(`exit code ${agent.exitCode}`);
  if (agent.message) details.push(agent.message);
  entry.details.textContent = details.map((d) => ` · ${d}`).join("");
  if (!entry.busy) {
    entry.stop.disabled = !LIVE.includes(agent.status);
    entry.merge.disabled = !MERGEABLE.includes(agent.status);
  }
}

function toggleLog(entry) {
  const open = entry.logPanel.hidden;
  entry.logPanel.hidden = !open;
  entry.logButton.setAttribute("aria-expanded", String(open));
  if (open) followLog(entry);
  else {
    entry.log?.abort();
    entry.log = null;
  }
}

/** Shows the last lines of the agent's output, live, until it ends or the
 *  log is closed. */
async function followLog(entry) {
  entry.log?.abort();
  const controller = new AbortController();
  entry.log = controller;
  entry.logText.textContent = "";
  entry.logText.hidden = true;
  entry.logNote.className = "note hint";
  entry.logNote.textContent = "Connecting…";
  const path = `/api/agents/${encodeURIComponent(entry.id)}/logs`;
  try {
    const response = await fetch(`${path}?follow=true&tail=${LOG_LINES}`, {
      credentials: "same-origin",
      signal: controller.signal,
    });
    if (!response.ok) throw await refusal(response, path);
    entry.logNote.textContent = "Live.";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text = lastLines(text + value);
      showLog(entry, text);
    }
    entry.logNote.textContent = "The log ended: the agent's container stopped.";
  } catch (error) {
    if (controller.signal.aborted) return;
    entry.logNote.className = "note error";
    entry.logNote.textContent = error instanceof ApiError ? capitalise(error.message) : "The log stream broke off.";
  } finally {
    if (entry.log === controller) entry.log = null;
  }
}

function lastLines(text) {
  const lines = text.split("\n");
  return lines.length > LOG_LINES ? lines.slice(-LOG_LINES).join("\n") : text;
}

/** Terminal colours and cursor moves, which a `<pre>` would show as junk. */
const TERMINAL_CODES = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\r(?=\n)/g;

function showLog(entry, text) {
  const pre = entry.logText;
  pre.hidden = false;
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = text.replace(TERMINAL_CODES, "");
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

async function toggleDiff(entry) {
  const open = entry.diffPanel.hidden;
  entry.diffPanel.hidden = !open;
  entry.diffButton.setAttribute("aria-expanded", String(open));
  if (!open) return;
  entry.diffNote.className = "note hint";
  entry.diffNote.textContent = "Loading…";
  entry.commits.replaceChildren();
  entry.files.replaceChildren();
  entry.patch.textContent = "";
  entry.patch.hidden = true;
  try {
    const diff = await api("GET", `/api/agents/${encodeURIComponent(entry.id)}/diff`);
    const changed = [...diff.patch.matchAll(/^diff --git a\/(.*) b\//gm)].map((m) => m[1]);
    entry.diffNote.textContent = diff.commits.length || changed.length
      ? `${diff.commits.length} commit${diff.commits.length === 1 ? "" : "s"}, ${changed.length} file${changed.length === 1 ? "" : "s"} changed against ${diff.agent.baseRef}.`
      : `No changes against ${diff.agent.baseRef} yet.`;
    entry.commits.replaceChildren(...diff.commits.map((commit) => {
      const item = element("li");
      item.append(element("code", "", commit.sha.slice(0, 8)), ` ${commit.subject} — ${commit.author}`);
      return item;
    }));
    entry.files.replaceChildren(...changed.map((file) => element("li", "", file)));
    entry.patch.textContent = diff.patch;
    entry.patch.hidden = !diff.patch;
  } catch (error) {
    entry.diffNote.className = "note error";
    entry.diffNote.textContent = capitalise(error.message);
  }
}

async function stopAgent(entry) {
  const confirmed = await confirmAction(
    `Stop agent ${entry.id}?`,
    "Its container is stopped and removed. Its checkout and branch stay, so its work can still be merged.",
    "Stop",
    { danger: true },
  );
  if (!confirmed) {
    entry.stop.focus();
    return;
  }
  await act(entry, entry.stop, "Stopping…", async () => {
    const agent = await api("POST", `/api/agents/${encodeURIComponent(entry.id)}/stop`);
    updateAgent(entry, agent);
    return "Stopped.";
  });
}

async function mergeAgent(entry) {
  const confirmed = await confirmAction(
    `Merge agent ${entry.id}?`,
    `Its branch ${entry.branch.textContent} is merged into the branch checked out in its source repository.`,
    "Merge",
  );
  if (!confirmed) {
    entry.merge.focus();
    return;
  }
  await act(entry, entry.merge, "Merging…", async () => {
    const merged = await api("POST", `/api/agents/${encodeURIComponent(entry.id)}/merge`);
    return merged.upToDate
      ? `Already merged into ${merged.into}.`
      : `Merged into ${merged.into} as ${merged.commit.slice(0, 8)}.`;
  });
}

/** Runs one of an agent's actions, with its outcome or the API's refusal
 *  under the agent's buttons. */
async function act(entry, control, doing, action) {
  const hadFocus = document.activeElement === control;
  entry.busy = true;
  control.disabled = true;
  setStatus(entry.status, doing);
  try {
    setStatus(entry.status, await action(), "good");
  } catch (error) {
    setStatus(entry.status, capitalise(error.message), "bad");
  }
  entry.busy = false;
  control.disabled = false;
  await loadAgents();
  // A button the action disabled (Stop, once stopped) hands the keyboard
  // focus on to the agent's first one.
  if (hadFocus && control.disabled) entry.logButton.focus();
}

// ---- the questions agents ask, live over a WebSocket ----------------------

/** The pending questions shown: id → the question, its list item and the
 *  parts that change. In the order asked. */
const questionItems = new Map();
/** The question whose answer controls this page shows (and claims). */
let openQuestion = null;
/** Connections lost in a row; the next attempt waits longer for each. */
let questionsLost = 0;
let questionsRetry = null;
let questionsClock = null;

const ANSWERS = {
  confirm: [["Yes", "yes"], ["No", "no"]],
  permission: [["Allow", "allow"], ["Deny", "deny"]],
};

function followQuestions() {
  clearTimeout(questionsRetry);
  streams.questions?.close();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/api/questions/ws`);
  streams.questions = socket;
  setConnection(questionsLost ? "Reconnecting…" : "Connecting…");
  socket.addEventListener("message", (event) => {
    if (streams.questions !== socket) return;
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    questionMessage(message);
  });
  socket.addEventListener("close", () => {
    if (streams.questions !== socket) return; // closed on purpose
    streams.questions = null;
    questionsLost += 1;
    const wait = Math.min(1000 * 2 ** (questionsLost - 1), 30000);
    setConnection(`Connection lost; reconnecting in ${Math.round(wait / 1000)} s…`, "bad");
    questionsRetry = setTimeout(reconnectQuestions, wait);
  });
}

/** Connects again, unless the session ended meanwhile (which the session
 *  check finds out, and then signs the page out). */
async function reconnectQuestions() {
  if (!session) return;
  try {
    await api("GET", "/api/session");
  } catch (error) {
    if (error.status === 401) return;
  }
  if (session && !streams.questions) followQuestions();
}

function setConnection(text, kind) {
  const connection = $("questions-connection");
  connection.textContent = text;
  connection.className = `connection ${kind ?? ""}`;
}

function sendQuestions(message) {
  const socket = streams.questions;
  if (socket?.readyState !== WebSocket.OPEN) return false;
  socket.send(JSON.stringify(message));
  return true;
}

function questionMessage(message) {
  switch (message.type) {
    case "pending": {
      questionsLost = 0;
      setConnection("Live", "good");
      const pending = new Set(message.questions.map((q) => q.id));
      for (const id of [...questionItems.keys()]) if (!pending.has(id)) removeQuestion(id);
      const claimed = new Set(message.claimed);
      for (const question of message.questions) addQuestion(question, claimed.has(question.id));
      // An answer sent just before a connection broke was lost if its
      // question is still pending: it may be given again.
      for (const entry of questionItems.values()) setBusy(entry, false);
      // A reconnect dropped this page's claim: claim again what it shows.
      if (openQuestion && !claimed.has(openQuestion)) sendQuestions({ type: "claim", id: openQuestion });
      else if (openQuestion) closeQuestion({ elsewhere: true });
      break;
    }
    case "asked":
      addQuestion(message.question, false);
      announce(`Agent ${message.question.agentId} asks: ${message.question.message}`);
      break;
    case "settled": {
      const { question } = message;
      if (!questionItems.has(question.id)) break;
      removeQuestion(question.id);
      announce(question.outcome === "answered"
        ? `Answered ${question.answer}${question.answeredBy ? ` by ${question.answeredBy}` : ""}.`
        : `A question of agent ${question.agentId} was ${question.outcome === "timed_out" ? "not answered in time" : "withdrawn"}.`);
      break;
    }
    case "claimed":
      if (!message.mine && openQuestion === message.id) closeQuestion({ elsewhere: true });
      setElsewhere(message.id, !message.mine);
      break;
    case "released":
      setElsewhere(message.id, false);
      break;
    case "error": {
      const entry = message.id && questionItems.get(message.id);
      if (!entry) break;
      setBusy(entry, false);
      if (message.code === "question_claimed") {
        if (openQuestion === message.id) closeQuestion({ elsewhere: true });
        setElsewhere(message.id, true);
      }
      setError(entry.error.id, capitalise(message.error));
      break;
    }
  }
  showQuestionCount();
}

function announce(text) {
  $("questions-announce").textContent = text;
}

function addQuestion(question, elsewhere) {
  let entry = questionItems.get(question.id);
  if (!entry) {
    entry = questionItem(question);
    questionItems.set(question.id, entry);
    $("questions-list").append(entry.item);
  }
  setElsewhere(question.id, elsewhere);
}

function removeQuestion(id) {
  const entry = questionItems.get(id);
  if (!entry) return;
  // Focus inside the question moves to the next one, or to the heading.
  const hadFocus = entry.item.contains(document.activeElement);
  const next = entry.item.nextElementSibling ?? entry.item.previousElementSibling;
  if (openQuestion === id) openQuestion = null;
  entry.item.remove();
  questionItems.delete(id);
  if (hadFocus) (next?.querySelector(".toggle") ?? $("questions-title")).focus();
}

/** Forgets the questions shown: the person signed out. */
function forgetQuestions() {
  clearTimeout(questionsRetry);
  questionsLost = 0;
  openQuestion = null;
  questionItems.clear();
  $("questions-list").replaceChildren();
  setConnection("");
  showQuestionCount();
}

function questionItem(question) {
  const { id } = question;
  const item = element("li", "question");
  item.dataset.question = id;
  const head = element("div", "item-head");
  head.append(element("span", "agent-id", `Agent ${question.agentId}`));
  const left = element("span", "time-left", timeLeft(question.deadline));
  head.append(left);
  const message = element("p", "question-message", question.message);
  message.id = `question-message-${id}`;
  item.append(head);
  if (question.agentTask) item.append(element("p", "hint task", `Task: ${question.agentTask}`));
  item.append(message);
  if (question.context) item.append(element("pre", "context", question.context));
  const elsewhere = element("p", "hint elsewhere", "Being answered elsewhere.");
  elsewhere.hidden = true;
  const toggle = makeButton("Answer", "toggle");
  toggle.setAttribute("aria-describedby", message.id);
  toggle.setAttribute("aria-expanded", "false");
  toggle.setAttribute("aria-controls", `answer-${id}`);

  const controls = element("div", "answer");
  controls.id = `answer-${id}`;
  controls.hidden = true;
  const choices = element("div", "choices");
  const answerButtons = [];
  let text = null;
  const choose = (label, value) => {
    const choice = makeButton(label, "choice");
    choice.dataset.answer = value;
    choice.addEventListener("click", () => answer(entry, value));
    answerButtons.push(choice);
    choices.append(choice);
  };
  if (question.kind === "text") {
    const textLabel = element("label", "", "Answer");
    textLabel.htmlFor = `text-${id}`;
    text = element("textarea");
    text.id = `text-${id}`;
    text.rows = 3;
    // Ctrl+Enter (or ⌘+Enter) sends, as in a chat.
    text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        sendText(entry);
      }
    });
    controls.append(textLabel, text);
    const send = makeButton("Send", "");
    send.addEventListener("click", () => sendText(entry));
    answerButtons.push(send);
    choices.append(send);
  } else {
    const answers = ANSWERS[question.kind] ?? question.options.map((option) => [option, option]);
    for (const [label, value] of answers) choose(label, value);
  }
  const reasonLabel = element("label", "", "Reason (optional)");
  reasonLabel.htmlFor = `reason-${id}`;
  const reason = element("input");
  reason.id = `reason-${id}`;
  reason.autocomplete = "off";
  reason.placeholder = "What the agent is told besides";
  controls.append(reasonLabel, reason, choices);
  const error = element("p", "error");
  error.id = `question-error-${id}`;
  error.setAttribute("role", "alert");
  error.hidden = true;
  item.append(elsewhere, toggle, controls, error);

  const entry = { question, item, left, elsewhere, toggle, controls, answerButtons, text, reason, error };
  toggle.addEventListener("click", () => {
    if (openQuestion === id) closeQuestion({ focus: true });
    else showAnswer(entry);
  });
  // Escape puts the question back, for another client to take.
  item.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && openQuestion === id) {
      event.preventDefault();
      closeQuestion({ focus: true });
    }
  });
  return entry;
}

/** Opens a question's answer controls and claims it, so other clients
 *  show it as being answered here; the one open before is put back. */
function showAnswer(entry) {
  closeQuestion();
  const { id } = entry.question;
  openQuestion = id;
  sendQuestions({ type: "claim", id });
  setError(entry.error.id, "");
  entry.controls.hidden = false;
  entry.toggle.textContent = "Close";
  entry.toggle.className = "toggle quiet";
  entry.toggle.setAttribute("aria-expanded", "true");
  (entry.text ?? entry.answerButtons[0]).focus();
}

/** Closes the open question's answer controls and releases the claim. */
function closeQuestion({ focus = false, elsewhere = false } = {}) {
  const entry = openQuestion && questionItems.get(openQuestion);
  if (!openQuestion) return;
  if (!elsewhere) sendQuestions({ type: "release", id: openQuestion });
  openQuestion = null;
  if (!entry) return;
  entry.controls.hidden = true;
  entry.toggle.textContent = "Answer";
  entry.toggle.className = "toggle";
  entry.toggle.setAttribute("aria-expanded", "false");
  if (focus) entry.toggle.focus();
}

function setElsewhere(id, elsewhere) {
  const entry = questionItems.get(id);
  if (!entry) return;
  entry.elsewhere.hidden = !elsewhere;
  entry.toggle.disabled = elsewhere;
  entry.item.classList.toggle("taken", elsewhere);
}

function setBusy(entry, busy) {
  for (const control of entry.answerButtons) control.disabled = busy;
  entry.reason.disabled = busy;
  if (entry.text) entry.text.disabled = busy;
}

function sendText(entry) {
  const text = entry.text.value.trim();
  if (!text) {
    setError(entry.error.id, "Write an answer first.");
    entry.text.focus();
    return;
  }
  answer(entry, text);
}

/** Answers over the WebSocket; the `settled` message that follows removes
 *  the question. Without a live connection, through the REST API. */
async function answer(entry, value) {
  const { id } = entry.question;
  const reason = entry.reason.value.trim() || undefined;
  setError(entry.error.id, "");
  setBusy(entry, true);
  if (sendQuestions({ type: "answer", id, answer: value, reason })) return;
  try {
    await api("POST", `/api/questions/${encodeURIComponent(id)}/answer`, { answer: value, reason });
    removeQuestion(id);
    showQuestionCount();
    announce(`Answered ${value}.`);
  } catch (error) {
    setBusy(entry, false);
    setError(entry.error.id, capitalise(error.message));
  }
}

/** The count of pending questions, on the Agents tab and in the title. */
function showQuestionCount() {
  const count = questionItems.size;
  const badge = $("questions-count");
  badge.textContent = String(count);
  badge.hidden = count === 0;
  $("questions-empty").hidden = count > 0;
  if (count) $("tab-agents").setAttribute("aria-label", `Agents, ${count} question${count === 1 ? "" : "s"} waiting`);
  else $("tab-agents").removeAttribute("aria-label");
  document.title = count ? `(${count}) agentyard` : "agentyard";
  tickQuestions();
}

/** Keeps each question's time left current while there are questions. */
function tickQuestions() {
  if (!questionItems.size) {
    clearInterval(questionsClock);
    questionsClock = null;
    return;
  }
  questionsClock ??= setInterval(() => {
    for (const entry of questionItems.values()) entry.left.textContent = timeLeft(entry.question.deadline);
  }, 1000);
}

// ---- start -----------------------------------------------------------------

(async () => {
  try {
    signedIn(await api("GET", "/api/session"));
  } catch (error) {
    signedOut(error.status === 401 ? "" : error.message);
  }
})();
