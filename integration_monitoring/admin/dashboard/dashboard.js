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
  return new Error(`${error.message || response.statusText}${error.parameter ? ` (${error.parameter})` : ""}`);
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

async function showCaller() {
  const me = await getJSON(`${API}/me`);
  document.body.classList.toggle("reader", me.tenants !== null);
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

function table(columns, rows, { rowClass, empty = "Nothing in this range." } = {}) {
  if (!rows.length) return el("p", { class: "empty" }, empty);
  const head = el("tr", {}, columns.map((c) =>
    el("th", { class: c.num ? "num" : undefined, scope: "col", "aria-sort": c.ariaSort }, c.header || c.label)));
  const body = rows.map((row) =>
    el("tr", { class: rowClass ? rowClass(row) : undefined },
      columns.map((c) => el("td", { class: c.num ? "num" : undefined }, c.render ? c.render(row) : row[c.key]))));
  return el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), el("tbody", {}, body)));
}

function replace(id, ...nodes) {
  $(id).replaceChildren(...nodes);
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
  if (!alerts.length) {
    replace("alerts-list", el("p", { class: "empty" }, "No active alerts."));
    return;
  }
  replace("alerts-list", ...alerts.map((a) => el("div", { class: `alert${a.acknowledgedAt ? " acked" : ""}`, "data-alert": a.alertId },
    pill(a.severity || "Sev?", "severity"), el("span", { class: "what" }, a.title || a.ruleId),
    el("span", {}, Object.entries(a.dimensions).map(([k, v]) => `${k}=${v}`).join(", ")),
    el("span", {}, `value ${number(a.value, 2)} (${a.operator || ""} ${number(a.threshold, 2)})`),
    el("span", {}, `since ${time(a.firedAt)}`),
    undelivered(a.delivery || {}),
    a.runbookUrl ? el("a", { href: a.runbookUrl.startsWith("http") ? a.runbookUrl : `/${a.runbookUrl}` }, "Runbook") : null,
    a.acknowledgedAt ? el("span", {}, `acknowledged by ${a.acknowledgedBy}`)
      : el("button", { type: "button", onclick: () => acknowledge(a.alertId) }, "Acknowledge"))));
}

// The channels whose notification has not arrived: still retrying from the outbox, or given up.
function undelivered(delivery) {
  const missing = Object.entries(delivery).filter(([, state]) => state !== "delivered");
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
    renderAlerts(await getJSON(`${API}/alerts?status=active`));
  } catch (error) {
    if (error instanceof SignInNeeded) askToSignIn(error);
    else showError(error);
  }
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
      [`${API}/alerts?status=active`, renderAlerts],
    ];
    const results = await Promise.allSettled(panels.map(([url]) => getJSON(url)));
    const failures = [];
    results.forEach((result, index) => {
      if (result.status === "fulfilled") panels[index][1](result.value);
      else failures.push(result.reason);
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
