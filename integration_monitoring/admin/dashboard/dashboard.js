// The admin dashboard: reads only the admin API, keeps every filter in the URL, and
// refreshes itself when the server's event stream says the data changed.

const API = "/api/admin";
const $ = (id) => document.getElementById(id);
// The filters the page offers are its form's fields.
const FILTERS = [...$("filters").elements].map((field) => field.name).filter(Boolean);
// The Status field lists integration statuses: it narrows the health table only (other
// endpoints' statuses are job and alert states).
const ONLY_FOR = { status: "health" };
// Which parameters each endpoint takes (it refuses the others), their rules and defaults:
// the server's own definitions, read from /dashboard/filters.json at start.
let definitions = null;
const charts = {};
let healthSort = { key: "health", descending: false };
let lastHealth = [];
let streamAbort = null;
let refreshing = null;
let pendingRefresh = false;
const FRESH = Symbol("fresh");
let lastFingerprint = FRESH;
// How the API wants to be called: none, a bearer token (ADMIN_API_TOKEN), a function key,
// or the Entra ID sign-in session's cookie; the server says which in access.json.
let access = { credential: "none" };
const STORED = "integration-monitoring.credential";

function currentFilters() {
  const params = new URLSearchParams(location.search);
  const filters = {};
  for (const key of FILTERS) {
    const value = (params.get(key) || "").trim();
    if (value) filters[key] = value;
  }
  return filters;
}

function query(endpoint) {
  const filters = currentFilters();
  const params = new URLSearchParams();
  for (const { name } of definitions.endpoints[endpoint]) {
    if (filters[name] && (ONLY_FOR[name] ?? endpoint) === endpoint) params.set(name, filters[name]);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

// -- calling the API ---------------------------------------------------------------------
// A token or key lives in this tab's sessionStorage and travels only in a header: never in
// a URL, where proxies and access logs would keep it.

class SignInNeeded extends Error {}

function credentialHeaders() {
  const secret = sessionStorage.getItem(STORED);
  if (!secret) return {};
  if (access.credential === "bearer") return { Authorization: `Bearer ${secret}` };
  if (access.credential === "function-key") return { "x-functions-key": secret };
  return {};
}

async function call(url, options = {}) {
  const response = await fetch(url, {
    ...options,
    // An ended sign-in session answers with a redirect to the sign-in page: notice it.
    redirect: access.credential === "session" ? "manual" : "follow",
    headers: { Accept: "application/json", ...credentialHeaders(), ...(options.headers || {}) },
  });
  if (response.type === "opaqueredirect" || response.status === 401) {
    const body = await response.json().catch(() => ({}));
    throw new SignInNeeded(body.error?.message || "");
  }
  return response;
}

async function failure(response) {
  const body = await response.json().catch(() => ({}));
  const error = body.error || {};
  return Object.assign(
    new Error(`${error.message || response.statusText}${error.parameter ? ` (${error.parameter})` : ""}`),
    { status: response.status, reason: error.message || response.statusText, parameter: error.parameter || null });
}

async function getJSON(url, options = {}) {
  const response = await call(url, options);
  if (!response.ok) throw await failure(response);
  return response.json();
}

function askToSignIn(error) {
  stopStream();
  const form = $("sign-in");
  const session = access.credential === "session";
  $("sign-in-help").replaceChildren(session
    ? el("a", { href: `/.auth/login/aad?post_login_redirect_uri=${encodeURIComponent(location.pathname + location.search)}` },
      "Your sign-in has ended: sign in again")
    : `${error.message ? `${error.message}. ` : ""}The key is kept in this tab only.`);
  $("sign-in-label").textContent = access.credential === "bearer" ? "Admin API token" : "Function key";
  form.elements.secret.closest("label").hidden = session;
  form.querySelector("button").hidden = session;
  form.hidden = false;
  $("live").textContent = "Signed out"; $("live").className = "live off";
  if (!session) form.elements.secret.focus();
}

function signIn(event) {
  event.preventDefault();
  const form = $("sign-in");
  sessionStorage.setItem(STORED, form.elements.secret.value.trim());
  form.reset();
  form.hidden = true;
  reload();
}

function signOut() {
  sessionStorage.removeItem(STORED);
  location.reload();
}

// Whether the caller is an admin: null until /me answers. The routing, which names every
// tenant's receivers, is for admins only, so it is asked for once this is known.
let admin = null;

async function showCaller() {
  const me = await getJSON(`${API}/me`);
  document.body.classList.toggle("reader", me.tenants !== null);
  const first = admin === null;
  admin = me.tenants === null;
  if (!admin) $("routing").hidden = true;
  else if (first) loadRouting();
  const scope = me.tenants === null ? "all tenants" : `tenants ${me.tenants.join(", ")}`;
  replace("who", me.mode === "open" ? "" : `${me.name} · ${scope}`,
    ...(sessionStorage.getItem(STORED) ? [el("button", { type: "button", onclick: signOut }, "Sign out")] : []));
}

// -- small renderers -------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const number = (value, digits = 0) =>
  value === null || value === undefined ? "–" : Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
const time = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
const pill = (value, kind = value) => el("span", { class: `pill v-${kind}` }, value || "–");

function integrationLink(row) {
  const params = new URLSearchParams(location.search);
  params.set("integrationId", row.integrationId);
  if (row.tenantId) params.set("tenantId", row.tenantId);
  return el("a", { href: `/dashboard?${params}`, "data-integration": row.integrationId }, row.integrationId);
}

function card(label, value, kind = "") {
  return el("div", { class: `card ${kind}` }, el("div", { class: "label" }, label), el("div", { class: "value" }, value));
}

function table(columns, rows, { rowClass, rowAttributes, empty = "Nothing in this range." } = {}) {
  if (!rows.length) return el("p", { class: "empty" }, empty);
  const head = el("tr", {}, columns.map((c) =>
    el("th", { class: c.num ? "num" : undefined, scope: "col", "aria-sort": c.ariaSort }, c.header || c.label)));
  const body = rows.map((row) =>
    el("tr", { class: rowClass ? rowClass(row) : undefined, ...(rowAttributes ? rowAttributes(row) : {}) },
      columns.map((c) => el("td", { class: c.num ? "num" : undefined }, c.render ? c.render(row) : row[c.key]))));
  return el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), el("tbody", {}, body)));
}

function replace(id, ...nodes) {
  $(id).replaceChildren(...nodes);
}

// A panel re-rendered by a refresh gives the focus back to the same control, found by its
// data-key (an Acknowledge, Silence or Expire button), so the keyboard does not lose its place.
function focusKey(container) {
  const active = document.activeElement;
  return container.contains(active) ? active.dataset.key : undefined;
}

function refocus(container, key) {
  if (key) container.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
}

function lineChart(id, labels, datasets) {
  const Chart = window.Chart;
  if (!Chart) return;
  const styles = getComputedStyle(document.documentElement);
  const text = styles.getPropertyValue("--muted").trim();
  const grid = styles.getPropertyValue("--line").trim();
  if (charts[id]) {
    charts[id].data.labels = labels;
    charts[id].data.datasets = datasets;
    charts[id].update("none");
    return;
  }
  charts[id] = new Chart($(id), {
    type: "line",
    data: { labels, datasets },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { labels: { color: text, boxWidth: 12 } } },
      elements: { point: { radius: 0 }, line: { borderWidth: 2, tension: 0.2 } },
      scales: { x: { ticks: { color: text, maxTicksLimit: 8 }, grid: { color: grid } },
                y: { beginAtZero: true, ticks: { color: text }, grid: { color: grid } } },
    },
  });
}

const series = (label, data, color) => ({ label, data, borderColor: color, backgroundColor: color });

// -- panels ----------------------------------------------------------------------------

function renderOverview(stats) {
  const s = stats.integrations.byStatus;
  const j = stats.syncJobs.byStatus;
  replace("overview-cards",
    card("Integrations", number(stats.integrations.total)),
    card("Active", number(s.active), "ok"), card("Paused", number(s.paused), "paused"),
    card("Error", number(s.error), s.error ? "bad" : ""),
    card("Jobs completed", number(j.completed), "ok"), card("Jobs failed", number(j.failed), j.failed ? "bad" : ""),
    card("Processing started", number(j.processing)), card("Enqueued", number(j.pending)),
    card("Failure rate", `${number(stats.syncJobs.failureRate, 2)} %`, stats.syncJobs.failureRate > 10 ? "bad" : ""));
  const trend = stats.errorRateTrend;
  lineChart("chart-error-rate", trend.map((p) => clock(p.bucket)),
    [series("failure rate %", trend.map((p) => p.failureRate), "#c62f2f")]);
  replace("top-integrations", table([
    { label: "Integration", render: integrationLink }, { label: "Adapter", key: "adapterType" },
    { label: "Jobs", num: true, render: (r) => number(r.jobs) }, { label: "Failed", num: true, render: (r) => number(r.failed) },
    { label: "Records", num: true, render: (r) => number(r.records) }], stats.topIntegrations));
}

const HEALTH_ORDER = { failing: 0, stale: 1, degraded: 2, healthy: 3, paused: 4 };

function renderHealth(rows) {
  lastHealth = rows;
  const { key, descending } = healthSort;
  const value = (row) => (key === "health" ? HEALTH_ORDER[row.health] ?? 9 : row[key] ?? "");
  const compare = (a, b) => (typeof a === "number" && typeof b === "number"
    ? a - b : String(a).localeCompare(String(b), undefined, { numeric: true }));
  const sorted = [...rows].sort((a, b) => compare(value(a), value(b)) * (descending ? -1 : 1));
  const focused = document.activeElement?.dataset?.sort;
  const sortable = (label, sortKey, num = false) => ({
    num, ariaSort: key === sortKey ? (descending ? "descending" : "ascending") : "none",
    header: el("button", {
      type: "button", "data-sort": sortKey,
      onclick: () => { healthSort = { key: sortKey, descending: key === sortKey ? !descending : false }; renderHealth(lastHealth); },
    }, label + (key === sortKey ? (descending ? " ▼" : " ▲") : "")),
  });
  replace("health-table", table([
    { ...sortable("Integration", "integrationId"), render: integrationLink },
    { ...sortable("Tenant", "tenantId"), key: "tenantId" },
    { ...sortable("Adapter", "adapterType"), key: "adapterType" },
    { ...sortable("Status", "status"), render: (r) => pill(r.status) },
    { ...sortable("Health", "health"), render: (r) => pill(r.health) },
    { ...sortable("Last successful sync", "lastSuccessfulSync"), render: (r) => time(r.lastSuccessfulSync) },
    { ...sortable("Syncs / h", "syncsPerHour", true), render: (r) => number(r.syncsPerHour, 2) },
    { ...sortable("Interval (min)", "expectedIntervalMinutes", true), render: (r) => number(r.expectedIntervalMinutes) },
    { ...sortable("Failed", "failedSyncs", true), render: (r) => number(r.failedSyncs) },
    { ...sortable("Errors", "errorCount", true), render: (r) => number(r.errorCount) },
    { ...sortable("Connection", "connectionStatus"), render: (r) => pill(r.connectionStatus, r.connectionStatus === "failing" ? "failing-conn" : r.connectionStatus) },
  ], sorted, { rowClass: (r) => r.health, empty: "No integrations match." }));
  if (focused) document.querySelector(`#health-table [data-sort="${focused}"]`)?.focus();
  for (const id of ["tenants", "integrations"]) {
    const values = [...new Set(rows.map((r) => (id === "tenants" ? r.tenantId : r.integrationId)))].sort();
    replace(id, ...values.map((v) => el("option", { value: v })));
  }
  renderIntegration(rows);
}

function renderIntegration(rows) {
  const id = currentFilters().integrationId;
  const row = id && rows.find((r) => r.integrationId === id);
  $("integration").hidden = !row;
  if (!row) return;
  $("integration-title").textContent = `Integration ${row.integrationId}`;
  const facts = [["Tenant", row.tenantId], ["Adapter", row.adapterType], ["Status", pill(row.status)],
    ["Health", pill(row.health)], ["Connection", pill(row.connectionStatus)],
    ["Last successful sync", time(row.lastSuccessfulSync)], ["Last sync", time(row.lastSyncAt)],
    ["Expected interval", row.expectedIntervalMinutes ? `${row.expectedIntervalMinutes} min` : "–"],
    ["Syncs in range", number(row.syncs)], ["Failed syncs", number(row.failedSyncs)], ["Errors", number(row.errorCount)],
    ["Status reason", row.statusReason || "–"]];
  replace("integration-facts", ...facts.flatMap(([label, value]) => [el("dt", {}, label), el("dd", {}, value)]));
}

const jobColumns = [
  { label: "Finished", render: (r) => time(r.finishedAt) }, { label: "Integration", render: integrationLink },
  { label: "Entity", key: "entity" }, { label: "Type", key: "syncType" }, { label: "Status", render: (r) => pill(r.status) },
  { label: "Duration (ms)", num: true, render: (r) => number(r.durationMs) },
  { label: "Created", num: true, render: (r) => number(r.recordsCreated) }, { label: "Updated", num: true, render: (r) => number(r.recordsUpdated) },
  { label: "Failed", num: true, render: (r) => number(r.recordsFailed) }, { label: "Error", key: "error" }];

function renderActivity(activity) {
  const r = activity.records;
  replace("activity-cards", card("Running now", number(activity.running.length)),
    card("Jobs finished", number(r.jobs)), card("Records created", number(r.recordsCreated), "ok"),
    card("Records updated", number(r.recordsUpdated)), card("Records failed", number(r.recordsFailed), r.recordsFailed ? "warn" : ""));
  const trend = activity.durationTrend;
  lineChart("chart-duration", trend.map((p) => clock(p.bucket)),
    [series("average", trend.map((p) => p.avgMs), "#2f6fde"), series("p95", trend.map((p) => p.p95Ms), "#b86e00")]);
  replace("running", table([{ label: "Started", render: (x) => time(x.startedAt) }, { label: "Integration", render: integrationLink },
    { label: "Entity", key: "entity" }, { label: "Running (s)", num: true, render: (x) => number(x.runningSeconds) }],
  activity.running, { empty: "No job is running." }));
  replace("recent", table(jobColumns, activity.recent));
}

function renderErrors(errors) {
  replace("errors-by-integration", table([{ label: "Integration", render: integrationLink },
    { label: "Errors", num: true, render: (r) => number(r.errors) }, { label: "Last", render: (r) => time(r.lastErrorAt) },
    { label: "Last error", render: (r) => r.lastError || r.lastOperation }], errors.byIntegration, { empty: "No errors." }));
  replace("error-types", table([{ label: "Error type", key: "errorType" }, { label: "Failures", num: true, render: (r) => number(r.failures) },
    { label: "Integrations", num: true, render: (r) => number(r.integrations) }, { label: "Example", key: "example" }],
  errors.topErrorTypes, { empty: "No failed jobs." }));
  replace("failed-jobs", table(jobColumns, errors.failedJobs, { empty: "No failed jobs." }));
}

function renderPerformance(perf) {
  replace("performance-cards", card("Records per second", number(perf.recordsPerSecond, 2)),
    ...perf.apiLatencyByAdapter.map((a) => card(`${a.adapterType} API avg`, `${number(a.avgMs)} ms`)));
  const throughput = perf.throughputTrend;
  lineChart("chart-throughput", throughput.map((p) => clock(p.bucket)),
    [series("records / s", throughput.map((p) => p.recordsPerSecond), "#1f8a4c")]);
  const buckets = [...new Set(perf.queueDepthTrend.map((p) => p.bucket))];
  const queues = [...new Set(perf.queueDepthTrend.map((p) => p.queue))];
  const depth = (queue, bucket, key) => perf.queueDepthTrend.find((p) => p.queue === queue && p.bucket === bucket)?.[key] ?? null;
  lineChart("chart-queue", buckets.map(clock), queues.flatMap((q) => [
    series(`${q} active`, buckets.map((b) => depth(q, b, "active")), "#2f6fde"),
    series(`${q} dead-lettered`, buckets.map((b) => depth(q, b, "deadLettered")), "#c62f2f")]));
  replace("duration-by-integration", table([{ label: "Integration", render: integrationLink },
    { label: "Jobs", num: true, render: (r) => number(r.jobs) }, { label: "Avg (ms)", num: true, render: (r) => number(r.avgMs) },
    { label: "p95 (ms)", num: true, render: (r) => number(r.p95Ms) }, { label: "Records / s", num: true, render: (r) => number(r.recordsPerSecond, 2) }],
  perf.durationByIntegration));
  replace("latency", table([{ label: "Adapter", key: "adapterType" }, { label: "Requests", num: true, render: (r) => number(r.requests) },
    { label: "Avg (ms)", num: true, render: (r) => number(r.avgMs) }, { label: "Max (ms)", num: true, render: (r) => number(r.maxMs) },
    { label: "Rate limited", num: true, render: (r) => number(r.rateLimited) }, { label: "Failed", num: true, render: (r) => number(r.failed) }],
  perf.apiLatencyByAdapter));
  $("latency-note").textContent = perf.latencyNote;
}

function renderAlerts(body) {
  const alerts = body.active;
  const list = $("alerts-list");
  const key = focusKey(list);
  const at = silencing ? alerts.findIndex((a) => a.alertId === silencing.alertId) : -1;
  if (silencing && at < 0) silencing = null;  // its alert resolved: nothing left to silence
  const rows = alerts.map(alertRow);
  if (silencing) {
    // The open form stays in place (moving it would lose what is typed and the focus): the
    // rows are put around it.
    for (const child of [...list.children]) if (child !== silencing.form) child.remove();
    if (!silencing.form.isConnected) list.append(silencing.form);
    silencing.form.before(...rows.slice(0, at + 1));
    silencing.form.after(...rows.slice(at + 1));
  } else {
    list.replaceChildren(...(rows.length ? rows : [el("p", { class: "empty" }, "No active alerts.")]));
  }
  refocus(list, key);
}

function alertRow(a) {
  const open = silencing?.alertId === a.alertId;
  return el("div", { class: `alert${a.acknowledgedAt ? " acked" : ""}${a.silencedBy ? " silenced" : ""}`, "data-alert": a.alertId },
    pill(a.severity || "Sev?", "severity"), el("span", { class: "what" }, a.title || a.ruleId),
    el("span", {}, Object.entries(a.dimensions).map(([k, v]) => `${k}=${v}`).join(", ")),
    el("span", {}, `value ${number(a.value, 2)} (${a.operator || ""} ${number(a.threshold, 2)})`),
    el("span", {}, `since ${time(a.firedAt)}`),
    a.silencedBy ? silencedNote(a.silencedBy) : null,
    routed(a),
    undelivered(a.delivery || {}),
    a.runbookUrl ? el("a", { href: a.runbookUrl.startsWith("http") ? a.runbookUrl : `/${a.runbookUrl}` }, "Runbook") : null,
    a.acknowledgedAt ? el("span", {}, `acknowledged by ${a.acknowledgedBy}`)
      : el("button", { type: "button", class: "ack", "data-key": `ack:${a.alertId}`, onclick: () => acknowledge(a.alertId) }, "Acknowledge"),
    el("button", { type: "button", class: "silence", "data-key": `silence:${a.alertId}`, "aria-expanded": String(open),
      "aria-controls": open ? "silence-form" : undefined, onclick: () => openSilenceForm(a) }, "Silence"));
}

// Delivery states that are no failure: sent, held back by a silence, or waiting for its
// group's message (the last two are named in the row).
const ON_COURSE = new Set(["delivered", "silenced", "grouped"]);

// Where the alert's notifications were sent: every channel it was routed to (and by which
// route, when the API says); one a silence held back, or waiting for its group, says so (what
// did not arrive for other reasons is in `undelivered`).
function routed(alert) {
  const channels = Object.entries(alert.delivery || {});
  if (!channels.length && !alert.route) return null;
  const to = channels.map(([channel, state]) => (state === "delivered" || !ON_COURSE.has(state) ? channel : `${channel} (${state})`)).join(", ");
  return el("span", { class: "routed", "data-routed": channels.map(([c, s]) => `${c}=${s}`).join(" ") },
    `routed${alert.route ? ` by ${alert.route}` : ""}${to ? ` to: ${to}` : ""}`);
}

// The silence that held the alert's notification back, by the short form of its id; a link
// to it in the Silences section.
function silencedNote(id) {
  const known = knownSilences.get(id);
  const ended = known?.state === "expired";
  return el("a", { href: `#silence-${id}`, class: `pill v-silenced${ended ? " ended" : ""}`, "data-silenced-by": id,
    title: `${ended ? "Was held back" : "Held back"} by silence ${id}` }, `${ended ? "was silenced" : "silenced"} ${shortId(id)}`);
}

// The channels whose notification has not arrived: still retrying from the outbox, or given up.
function undelivered(delivery) {
  const missing = Object.entries(delivery).filter(([, state]) => !ON_COURSE.has(state));
  if (!missing.length) return null;
  const gaveUp = missing.some(([, state]) => state !== "retrying");
  const text = missing.map(([channel, state]) => `${channel} (${state === "retrying" ? "retrying" : "gave up"})`);
  return el("span", { class: `undelivered ${gaveUp ? "v-failed" : "v-stale"}`, "data-delivery": missing.map(([c, s]) => `${c}=${s}`).join(" "),
    title: gaveUp ? "Not delivered: the relay gave up on this channel (see alert.delivery_abandoned / alert.delivery_failed)" : "Not delivered yet: queued for redelivery" },
  `undelivered: ${text.join(", ")}`);
}

async function acknowledge(alertId) {
  try {
    await getJSON(`${API}/alerts/${encodeURIComponent(alertId)}/ack`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ by: "dashboard" }),
    });
    await reloadAlerts();
  } catch (error) {
    if (error instanceof SignInNeeded) askToSignIn(error);
    else showError(error);
  }
}

async function reloadAlerts() {
  renderAlerts(await getJSON(`${API}/alerts?status=active`));
}

// -- silences ------------------------------------------------------------------------------
// A silence holds back the notifications of alerts whose labels match all its matchers, from
// its start to its end (or, with a weekly window, only within that window). The form opens
// under an alert's row, prefilled from it; the Silences section lists them with an Expire.

const QUICK_HOURS = [1, 2, 8, 24];
const DEFAULT_HOURS = 2;
// Labels of an alert row a silence may also match on (the rule always).
const ROW_LABELS = ["tenantId", "integrationId", "adapterType"];
const OPERATOR_TEXT = { Equals: "=", NotEquals: "≠", Contains: "contains", DoesNotContain: "does not contain" };
// The form open under an alert's row, if any: { alertId, form }.
let silencing = null;
// The silences last listed, by id (an alert row says whether its silence has ended).
let knownSilences = new Map();

const shortId = (id) => String(id).slice(0, 8);
const pad = (n) => String(n).padStart(2, "0");
// A moment as a datetime-local field shows it: local time, to the minute.
const localInput = (date) =>
  `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
const inHours = (hours) => new Date(Date.now() + hours * 3_600_000);

function matcherText(m) {
  return `${m.label} ${OPERATOR_TEXT[m.operator] || m.operator} ${m.values.join(" or ")}`;
}

function matcherList(matchers) {
  if (!matchers.length) return el("span", { class: "matchers" }, "every alert");
  return el("span", { class: "matchers" }, matchers.map((m) =>
    el("span", { class: "matcher", "data-matcher": `${m.label} ${m.operator} ${m.values.join("|")}` }, matcherText(m))));
}

function silenceForm(alert) {
  const labelled = ROW_LABELS.map((label) => [label, alert[label] || alert.dimensions?.[label]]).filter(([, value]) => value);
  const endsAt = el("input", { type: "datetime-local", name: "endsAt", id: "silence-ends-at", step: "60",
    min: localInput(new Date()), value: localInput(inHours(DEFAULT_HOURS)), "aria-describedby": "silence-ends-in" });
  const endsIn = el("output", { id: "silence-ends-in", for: "silence-ends-at", class: "note" });
  const showEnd = () => {
    const end = new Date(endsAt.value);
    const hours = (end - Date.now()) / 3_600_000;
    endsIn.textContent = Number.isNaN(end.getTime()) ? "" : hours <= 0 ? "in the past" : `in ${number(hours, 1)} h`;
  };
  endsAt.addEventListener("input", showEnd);
  showEnd();
  const quick = QUICK_HOURS.map((hours) => el("button", { type: "button", "data-hours": String(hours),
    onclick: () => { endsAt.value = localInput(inHours(hours)); showEnd(); } }, `${hours} h`));
  const form = el("form", { id: "silence-form", class: "silence-form", "data-for": alert.alertId,
    "aria-labelledby": "silence-form-title", novalidate: "" },
    el("h3", { id: "silence-form-title" }, `Silence “${alert.title || alert.ruleId}”`),
    el("fieldset", {}, el("legend", {}, "Silence alerts where"),
      el("p", { class: "matcher fixed", "data-matcher": `ruleId Equals ${alert.ruleId}` }, `ruleId = ${alert.ruleId}`),
      labelled.map(([label, value]) => el("label", { class: "matcher-choice" },
        el("input", { type: "checkbox", name: "matcher", value: label, "data-value": value, checked: "" }), `${label} = ${value}`)),
      labelled.length ? el("p", { class: "note" }, "Untick a label to silence more widely.") : null),
    el("fieldset", {}, el("legend", {}, "Until"),
      el("span", { class: "quick", role: "group", "aria-label": "End in" }, el("span", { class: "note", "aria-hidden": "true" }, "end in"), quick),
      el("label", {}, "Ends at (your time)", endsAt), endsIn),
    el("label", { class: "comment-field" }, "Comment: why, for the next on-call",
      el("textarea", { name: "comment", rows: "2", maxlength: "1000", "aria-required": "true" })),
    el("p", { id: "silence-form-error", class: "form-error", role: "alert", hidden: "" }),
    el("div", { class: "actions" },
      el("button", { type: "submit" }, "Create silence"),
      el("button", { type: "button", onclick: () => closeSilenceForm(true) }, "Cancel")));
  form.addEventListener("submit", (event) => { event.preventDefault(); submitSilence(alert, form); });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.preventDefault(); closeSilenceForm(true); }
  });
  return form;
}

function openSilenceForm(alert) {
  if (silencing?.alertId === alert.alertId) {  // open already: the button takes you back to it
    silencing.form.elements.comment.focus();
    return;
  }
  closeSilenceForm(false);
  const form = silenceForm(alert);
  silencing = { alertId: alert.alertId, form };
  const row = $("alerts-list").querySelector(`[data-alert="${CSS.escape(alert.alertId)}"]`);
  row.after(form);
  const button = row.querySelector("button.silence");
  button.setAttribute("aria-expanded", "true");
  button.setAttribute("aria-controls", "silence-form");
  form.elements.comment.focus();
}

// Closes the form; `returnFocus` puts the focus back on its row's Silence button (as does a
// form that had it).
function closeSilenceForm(returnFocus) {
  if (!silencing) return;
  const { alertId, form } = silencing;
  silencing = null;
  const hadFocus = form.contains(document.activeElement);
  form.remove();
  const button = $("alerts-list").querySelector(`[data-alert="${CSS.escape(alertId)}"] button.silence`);
  if (!button) return;
  button.setAttribute("aria-expanded", "false");
  button.removeAttribute("aria-controls");
  if (returnFocus || hadFocus) button.focus();
}

function silenceRequest(alert, form) {
  const matchers = [{ label: "ruleId", operator: "Equals", values: [alert.ruleId] },
    ...[...form.querySelectorAll("input[name=matcher]:checked")].map((box) =>
      ({ label: box.value, operator: "Equals", values: [box.dataset.value] }))];
  const body = { matchers, comment: form.elements.comment.value };
  // The API checks the end and says what is wrong with it; one the browser cannot read goes
  // as typed.
  const typed = form.elements.endsAt.value;
  const end = new Date(typed);
  if (typed) body.endsAt = Number.isNaN(end.getTime()) ? typed : end.toISOString().replace(/\.\d{3}Z$/, "Z");
  return body;
}

function showFormError(form, error) {
  const box = form.querySelector(".form-error");
  box.textContent = error ? error.message : "";
  box.hidden = !error;
  for (const field of form.querySelectorAll("[aria-invalid]")) {
    field.removeAttribute("aria-invalid");
    field.removeAttribute("aria-errormessage");
  }
  if (!error) return;
  // The field the API named, when the form has it: marked, and focused to be corrected.
  const name = (error.parameter || "").split(/[.[]/)[0];
  const field = { endsAt: form.elements.endsAt, startsAt: form.elements.endsAt, comment: form.elements.comment,
    matchers: form.querySelector("input[name=matcher]") }[name];
  if (field) {
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-errormessage", box.id);
    field.focus();
  }
}

async function submitSilence(alert, form) {
  const submit = form.querySelector("button[type=submit]");
  if (submit.disabled) return;  // one request at a time: a double click makes one silence
  submit.disabled = true;
  showFormError(form, null);
  try {
    const response = await call(`${API}/silences`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(silenceRequest(alert, form)),
    });
    if (!response.ok) {
      showFormError(form, await failure(response));
      return;
    }
    const silence = await response.json();
    if (silencing?.form === form) closeSilenceForm(true);
    $("alerts-status").textContent =
      `Silenced “${alert.title || alert.ruleId}” until ${time(silence.endsAt)} (silence ${shortId(silence.id)}).`;
  } catch (error) {
    if (error instanceof SignInNeeded) askToSignIn(error);
    else showFormError(form, error);
    return;
  } finally {
    submit.disabled = false;
  }
  await afterSilenceChange();
}

// After a silence was made or ended: the list again, and the alerts (their rows say which
// silence holds them); a failure here is the page's, not the form's.
async function afterSilenceChange() {
  await Promise.all([loadSilences(), reloadAlerts().catch((error) => {
    if (error instanceof SignInNeeded) askToSignIn(error);
    else showError(error);
  })]);
}

async function loadSilences() {
  try {
    renderSilences(await getJSON(`${API}/silences`));
    showSectionError("silences", null);
  } catch (error) {
    if (error instanceof SignInNeeded) askToSignIn(error);
    else showSectionError("silences", error);
  }
}

// An optional section (silences, routing) after its API answered: hidden when the server has
// no such API (404) or it is not for this caller (403), else shown, with its own error rather
// than the page's banner (the panels above do not depend on it).
function sectionLoaded(section, render, body, error) {
  const unavailable = [403, 404].includes(error?.status);
  $(section).hidden = unavailable;
  showSectionError(section, unavailable ? null : error);
  if (!error) render(body);
}

// An optional section's own error line.
function showSectionError(section, error, doing = "load") {
  const line = $(`${section}-error`);
  line.hidden = !error;
  line.textContent = error ? `Could not ${doing}: ${error.message}` : "";
}

// When it holds: until when (active), from when (pending), or when it ended; a weekly one
// also says its days and hours, and its window is the one in force or the next.
function silenceWindow(s) {
  const w = s.window;
  const weekly = s.weekly
    ? `${s.weekly.days.map((d) => d.slice(0, 3)).join(", ")} ${s.weekly.startTime}–${s.weekly.endTime} (${s.timeZone})` : null;
  let when;
  if (s.state === "expired") when = `ended ${time(s.expiredAt || s.endsAt)}`;
  else if (!w) when = "–";
  else if (s.state === "active") when = `now, until ${time(w.endsAt)}`;
  else when = `${weekly ? "next " : "from "}${time(w.startsAt)} until ${time(w.endsAt)}`;
  return weekly ? el("span", { class: "window" }, weekly, el("br"), when) : el("span", { class: "window" }, when);
}

function silenceColumns(expire) {
  return [
    { label: "Silence", render: (s) => el("code", { title: s.id }, shortId(s.id)) },
    { label: "State", render: (s) => pill(s.state) },
    { label: "Matches", render: (s) => matcherList(s.matchers) },
    { label: "Window", render: silenceWindow },
    { label: "Created by", render: (s) => el("span", { title: `created ${time(s.createdAt)}` },
      s.createdBy || "–", s.source === "paused-integration" ? " (paused integration)" : "") },
    { label: "Comment", render: (s) => el("span", { class: "comment" }, s.comment) },
    { label: "Holding", header: el("span", { title: "notifications it is holding back" }, "Holding back"), num: true,
      render: (s) => number(s.holding) },
    ...(expire ? [{ header: el("span", { class: "visually-hidden" }, "Actions"), render: (s) => el("button", {
      type: "button", class: "expire", "data-key": `expire:${s.id}`, "aria-label": `Expire silence ${shortId(s.id)}`,
      onclick: (event) => expireSilence(s, event.currentTarget) }, "Expire") }] : []),
  ];
}

const STATE_ORDER = { active: 0, pending: 1, expired: 2 };

function renderSilences(body) {
  // Active first, then upcoming; newest first within each (the API's order; sort is stable).
  const silences = [...body.silences].sort((a, b) => (STATE_ORDER[a.state] ?? 9) - (STATE_ORDER[b.state] ?? 9));
  knownSilences = new Map(silences.map((s) => [s.id, s]));
  const current = silences.filter((s) => s.state !== "expired");
  const expired = silences.filter((s) => s.state === "expired");
  const list = $("silences-list");
  const key = focusKey(list);
  const rowAttributes = (s) => ({ id: `silence-${s.id}`, "data-silence": s.id, "data-state": s.state, tabindex: "-1" });
  replace("silences-list", table(silenceColumns(true), current, { rowAttributes, empty: "No active or upcoming silences." }));
  $("silences-expired-count").textContent = `(${expired.length})`;
  replace("silences-expired-list", table(silenceColumns(false), expired, { rowAttributes, empty: "None." }));
  refocus(list, key);
}

async function expireSilence(silence, button) {
  button.disabled = true;
  showSectionError("silences", null);
  try {
    await getJSON(`${API}/silences/${encodeURIComponent(silence.id)}/expire`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  } catch (error) {
    if (error instanceof SignInNeeded) askToSignIn(error);
    else showSectionError("silences", error, `expire silence ${shortId(silence.id)}`);
    return;
  } finally {
    button.disabled = false;
  }
  $("silences-status").textContent = `Silence ${shortId(silence.id)} expired.`;
  await afterSilenceChange();
  // Its row, and the button that had the focus, moved to the expired list: the focus goes to
  // the section's heading.
  if (!document.activeElement || document.activeElement === document.body) $("silences-title").focus();
}

// -- routing -------------------------------------------------------------------------------
// The routes file as the relay loaded it: routes in order (the first that matches takes the
// alert, the default last), and the receivers with whether the setting each names is set.

function routeReceivers(route) {
  const named = (route.receivers || []).map((r) => (typeof r === "string" ? r : r.name));
  const parts = [route.channels === "rule" ? "the rule's channels" : named.join(", ") || "–"];
  if (route.unknownRuleReceivers?.length) parts.push(`an unknown rule's: ${route.unknownRuleReceivers.join(", ")}`);
  return parts.join("; ");
}

function routeGrouping(group) {
  if (!group) return "–";
  if (!("by" in group)) return Object.entries(group).map(([k, v]) => `${k}: ${v}`).join("; ");
  return `by ${group.by.length ? group.by.join(", ") : "route"}, waits ${number(group.waitSeconds)} s`;
}

function receiverState(receiver) {
  const set = receiver.configured ?? receiver.settingSet;
  if (set === true) return pill("configured", "active");
  if (set === false) return pill(receiver.setting ? `${receiver.setting} not set` : "not configured", "failed");
  return receiver.type === "email" ? "sent by the action group" : "–";
}

async function loadRouting() {
  try {
    sectionLoaded("routing", renderRoutes, await getJSON(`${API}/routes`), null);
  } catch (error) {
    if (error instanceof SignInNeeded) askToSignIn(error);
    else sectionLoaded("routing", renderRoutes, null, error);
  }
}

function renderRoutes(body) {
  const routes = body.routes || [];
  replace("routing-routes", table([
    { label: "#", num: true, render: (r) => number(routes.indexOf(r) + 1) },
    { label: "Route", key: "name" },
    { label: "Matches", render: (r) => (r.matchers?.length ? matcherList(r.matchers) : "anything no route above took") },
    { label: "Sends to", render: routeReceivers },
    { label: "Grouping (Slack)", render: (r) => routeGrouping(r.group) }],
  routes, { rowAttributes: (r) => ({ "data-route": r.name }), empty: "No routes." }),
  body.file ? el("p", { class: "note" }, `From ${body.file}; the first route whose matchers all hold takes the alert.`) : null);
  replace("routing-receivers", table([
    { label: "Receiver", key: "name" }, { label: "Type", key: "type" },
    { label: "Setting", render: (r) => r.setting || "–" }, { label: "State", render: receiverState }],
  body.receivers || [], { rowAttributes: (r) => ({ "data-receiver": r.name }), empty: "No receivers." }));
}

// -- refresh, filters, live updates ---------------------------------------------------

function showError(error) {
  $("error").hidden = !error;
  $("error").textContent = error ? `Could not load: ${error.message}` : "";
}

async function refresh() {
  if (refreshing) {
    pendingRefresh = true;  // the one running was asked for an older view
    return refreshing;
  }
  refreshing = (async () => {
    const base = `${API}/integrations`;
    const panels = [
      [`${base}/stats${query("stats")}`, renderOverview],
      [`${base}/health${query("health")}`, (body) => renderHealth(body.integrations)],
      [`${base}/sync-activity${query("sync-activity")}`, renderActivity],
      [`${base}/errors${query("errors")}`, renderErrors],
      [`${base}/performance${query("performance")}`, renderPerformance],
      // Silences before the alerts: an alert row says whether its silence has ended.
      [`${API}/silences`, renderSilences, "silences"],
      [`${API}/alerts?status=active`, renderAlerts],
      [`${API}/routes`, renderRoutes, "routing"],
    ].filter(([, , section]) => section !== "routing" || admin);
    const results = await Promise.allSettled(panels.map(([url]) => getJSON(url)));
    const failures = [];
    results.forEach((result, index) => {
      const [, render, section] = panels[index];
      const error = result.status === "rejected" ? result.reason : null;
      if (section && !(error instanceof SignInNeeded)) sectionLoaded(section, render, result.value, error);
      else if (error) failures.push(error);
      else render(result.value);
    });
    const signedOut = failures.find((f) => f instanceof SignInNeeded);
    if (signedOut) askToSignIn(signedOut);
    if (failures.length) lastFingerprint = null;  // the next snapshot fetches everything again
    showError(signedOut ? null : failures[0] || null);
    document.body.dataset.loaded = String(Date.now());
  })();
  try {
    await refreshing;
  } finally {
    refreshing = null;
  }
  if (pendingRefresh) {
    pendingRefresh = false;
    await refresh();
  }
}

// -- live updates ------------------------------------------------------------------------
// Server-Sent Events read with fetch rather than EventSource, which cannot send the
// credential header. The server ends each stream after about a minute; we reconnect after
// its retry hint.

function stopStream() {
  if (streamAbort) streamAbort.abort();
  streamAbort = null;
}

async function* serverEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const event = { type: "message", data: [], retry: null };
      for (const line of buffer.slice(0, end).split("\n")) {
        if (!line || line.startsWith(":")) continue;  // a comment keeps the line open
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event.type = text;
        else if (field === "data") event.data.push(text);
        else if (field === "retry" && /^\d+$/.test(text)) event.retry = Number(text);
      }
      buffer = buffer.slice(end + 2);
      yield { ...event, data: event.data.join("\n") };
    }
  }
}

function onSnapshot(data) {
  const { fingerprint } = JSON.parse(data);
  document.body.dataset.snapshots = String(Number(document.body.dataset.snapshots || 0) + 1);
  document.body.dataset.lastSnapshot = fingerprint;
  const first = lastFingerprint === FRESH;  // reload() has just fetched everything
  if (fingerprint === lastFingerprint) return;  // a renewed stream: nothing new
  lastFingerprint = fingerprint;
  if (!first) refresh();
}

async function connect() {
  stopStream();
  const controller = new AbortController();
  streamAbort = controller;
  const live = $("live");
  const status = (text, on) => { live.textContent = text; live.className = `live ${on ? "on" : "off"}`; };
  let retry = 3000;
  while (!controller.signal.aborted) {
    let renewed = false;
    try {
      const response = await call(`${API}/integrations/stream${query("stream")}`,
        { signal: controller.signal, headers: { Accept: "text/event-stream" } });
      if (!response.ok) {
        const error = await failure(response);
        if ([400, 403, 404].includes(response.status)) {  // a refused filter or scope
          status(`Not live: ${error.message}`, false);
          return;
        }
        // busy or starting (429, 5xx): reconnect, as late as the server asks
        const wait = Number(response.headers.get("Retry-After"));
        if (wait > 0) retry = Math.min(wait * 1000, 60_000);
        lastFingerprint = null;  // refresh once it answers again
        throw error;
      }
      status("Live", true);
      for await (const event of serverEvents(response.body)) {
        if (event.retry) retry = event.retry;
        if (event.type === "snapshot") onSnapshot(event.data);
        else if (event.type === "bye") renewed = true;
        else if (event.type === "unavailable") {
          status("Reconnecting… (data source unavailable)", false);
          lastFingerprint = null;  // refresh once it answers again
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error instanceof SignInNeeded) { askToSignIn(error); return; }
    }
    if (!renewed) status("Reconnecting…", false);
    await new Promise((resolve) => setTimeout(resolve, retry));
  }
}

function fillForm() {
  const form = $("filters");
  const filters = currentFilters();
  for (const key of FILTERS) form.elements[key].value = filters[key] || definitions.defaults[key] || "";
}

function applyForm(event) {
  event.preventDefault();
  if (!definitions) return;  // still starting
  const form = $("filters");
  const params = new URLSearchParams();
  for (const key of FILTERS) {
    const value = form.elements[key].value.trim();
    if (value && value !== definitions.defaults[key]) params.set(key, value);
  }
  history.pushState(null, "", `/dashboard${params.toString() ? `?${params}` : ""}`);
  reload();
}

function reload() {
  if (!definitions) return;  // start() reloads, from the URL, once they are in
  fillForm();
  lastFingerprint = FRESH;
  refresh();
  connect();
  showCaller().catch(() => {});  // a failure here shows through the panels' own calls
}

document.addEventListener("click", (event) => {
  // An alert's silence: shown where it is listed, without changing the URL (a new history
  // entry would reload the page's data when going back).
  const silence = event.target.closest("a[data-silenced-by]");
  if (silence) {
    event.preventDefault();
    const row = $(`silence-${silence.dataset.silencedBy}`);
    if (!row) return;  // not listed (yet)
    row.closest("details")?.setAttribute("open", "");
    row.scrollIntoView({ block: "center" });
    row.focus({ preventScroll: true });
    return;
  }
  const link = event.target.closest("a[data-integration], #home");
  if (!link || event.metaKey || event.ctrlKey) return;
  event.preventDefault();
  history.pushState(null, "", link.getAttribute("href"));
  reload();
});
window.addEventListener("popstate", reload);
$("filters").addEventListener("submit", applyForm);
$("clear").addEventListener("click", () => { history.pushState(null, "", "/dashboard"); reload(); });
$("sign-in").addEventListener("submit", signIn);

// A field limited to one endpoint offers that endpoint's values.
function offerValues() {
  for (const [name, endpoint] of Object.entries(ONLY_FOR)) {
    const values = definitions.endpoints[endpoint].find((p) => p.name === name).schema.enum;
    $("filters").elements[name].append(...values.map((value) => el("option", {}, value)));
  }
}

async function start() {
  try {
    access = await (await fetch("/dashboard/access.json")).json();
  } catch {
    // an older server: no credential
  }
  try {
    definitions = await getJSON("/dashboard/filters.json");
  } catch (error) {
    if (error instanceof SignInNeeded) askToSignIn(error);
    else showError(error);
    return;
  }
  offerValues();
  if (["bearer", "function-key"].includes(access.credential) && !sessionStorage.getItem(STORED)) {
    askToSignIn(new Error(""));
    return;
  }
  reload();
}
start();
