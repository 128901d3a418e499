// StreamForge twin dashboard: stream the demo plant (or a CSV) through /api/v1/inference/stream.
const $ = (id) => document.getElementById(id);
const WINDOW = 300;
let ws = null, running = false, data = null, cursor = 0, sessionId = null, ensembleInfo = null;
let sentAt = 0, predictions = 0, rateStart = 0, monitor = null;
const openAlerts = new Map();  // "signal|kind" -> alert record (with `acknowledged`)
const shelved = new Map();  // "signal|kind" -> the shelve record (until_iso, by, reason), while in force

const signalChart = new Chart($("signal-chart"), {
  type: "line",
  data: { labels: [], datasets: [
    { label: "predicted", data: [], borderColor: "#2e90fa", pointRadius: 0, borderWidth: 2 },
    { label: "actual", data: [], borderColor: "#f79009", pointRadius: 0, borderWidth: 1.5 }] },
  options: { animation: false, responsive: true, maintainAspectRatio: false, interaction: { intersect: false }, scales: { x: { display: false } } },
});
const latencyChart = new Chart($("latency-chart"), {
  type: "line",
  data: { labels: [], datasets: [
    { label: "latency ms", data: [], borderColor: "#12b76a", pointRadius: 0, yAxisID: "y" },
    { label: "predictions/s", data: [], borderColor: "#7a5af8", pointRadius: 0, yAxisID: "y1" }] },
  options: { animation: false, responsive: true, maintainAspectRatio: false, scales: { x: { display: false }, y: { beginAtZero: true },
             y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } },
});

const residualChart = new Chart($("residual-chart"), {
  type: "line",
  data: { labels: [], datasets: [
    { label: "residual (measured - predicted)", data: [], borderColor: "#f04438", pointRadius: 0, borderWidth: 1.5 },
    { label: "alarm band", data: [], borderColor: "#98a2b3", borderDash: [4, 4], pointRadius: 0, borderWidth: 1, fill: false },
    { label: "", data: [], borderColor: "#98a2b3", borderDash: [4, 4], pointRadius: 0, borderWidth: 1, fill: "-1",
      backgroundColor: "rgba(152,162,179,.12)" }] },
  options: { animation: false, responsive: true, maintainAspectRatio: false, interaction: { intersect: false },
             plugins: { legend: { labels: { filter: (item) => item.text !== "" } } }, scales: { x: { display: false } } },
});

function push(chart, label, values) {
  chart.data.labels.push(label);
  values.forEach((v, i) => chart.data.datasets[i].data.push(v));
  if (chart.data.labels.length > WINDOW) {
    chart.data.labels.shift();
    chart.data.datasets.forEach((d) => d.data.shift());
  }
}

function status(text, isError = false) { $("status").textContent = text; $("status").style.color = isError ? "#d92d20" : ""; }
function setConn(text, on) { $("conn").textContent = text; $("conn").className = `pill ${on ? "on" : "off"}`; }

async function loadEnsembles() {
  const { ensembles } = await (await fetch("/api/v1/ensembles")).json();
  $("ensemble").replaceChildren(...ensembles.map((e) => new Option(e.ensemble_name, e.ensemble_name)));
  if (!ensembles.length) status("No ensembles on the server: train one with `python -m models.twin.train`.", true);
}

async function loadDemo(fault) {
  const demo = await (await fetch(`/api/v1/demo/plant?samples=3000&seed=7${fault ? `&fault=${fault}` : ""}`)).json();
  return { timestamps: demo.timestamps, rows: demo.boundary.map((r) => Object.fromEntries(demo.boundary_signals.map((s, i) => [s, r[i]]))),
           actual: demo.target.map((r) => Object.fromEntries(demo.target_signals.map((s, i) => [s, r[i]]))) };
}

function parseCsv(text, boundary, targets) {
  const lines = text.trim().split(/\r?\n/);
  const header = lines[0].split(",").map((h) => h.trim());
  const missing = (boundary.length ? boundary : targets).filter((s) => !header.includes(s));
  if (missing.length) throw new Error(`CSV lacks ${boundary.length ? "boundary" : "target"} columns: ${missing.join(", ")}`);
  const col = Object.fromEntries(header.map((h, i) => [h, i]));
  const rows = [], actual = [], timestamps = [];
  for (const line of lines.slice(1)) {
    const cells = line.split(",");
    rows.push(Object.fromEntries(boundary.map((s) => [s, Number(cells[col[s]])])));
    actual.push(Object.fromEntries(targets.filter((t) => t in col).map((t) => [t, Number(cells[col[t]])])));
    timestamps.push("timestamp" in col ? cells[col.timestamp] : undefined);
  }
  return { rows, actual, timestamps };
}

function sendNext() {
  if (!running || !data) return;
  const batch = Math.max(1, Number($("batch").value));
  if (cursor + batch > data.rows.length) cursor = 0;  // loop over the data
  sentAt = performance.now();
  // measured values go along, so the server's residual monitor can warn; a twin of target signals only
  // (no boundary signals) predicts from them alone
  const withBoundary = ensembleInfo.boundary_signals.length > 0;
  const message = batch === 1
    ? { type: "predict", data: { ...(withBoundary ? { boundary_signals: data.rows[cursor] } : {}),
                                 actual_signals: data.actual[cursor], timestamp: data.timestamps[cursor] } }
    : { type: "predict_batch", data: { ...(withBoundary ? { batch: data.rows.slice(cursor, cursor + batch) } : {}),
                                       actual_signals: data.actual.slice(cursor, cursor + batch),
                                       ...(data.timestamps[cursor] !== undefined ? { timestamps: data.timestamps.slice(cursor, cursor + batch) } : {}) } };
  message.id = cursor;
  ws.send(JSON.stringify(message));
}

function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }

function renderAlerts() {
  const now = new Date().toISOString();
  for (const [key, s] of shelved) if (new Date(s.until_iso).toISOString() <= now) shelved.delete(key);
  const rows = [...openAlerts.entries()].filter(([key]) => !shelved.has(key)).map(([, a]) => {
    const tr = document.createElement("tr");
    tr.dataset.kind = a.kind; tr.dataset.signal = a.signal;
    if (a.acknowledged) tr.className = "acknowledged";
    const ack = document.createElement("button");
    ack.textContent = a.acknowledged ? "Acknowledged" : "Acknowledge";
    ack.disabled = !!a.acknowledged;
    ack.className = "ack";
    ack.onclick = () => acknowledge(a);
    const shelve = document.createElement("button");
    shelve.textContent = "Shelve";
    shelve.className = "shelve";
    shelve.onclick = () => shelveAlert(a);
    const action = document.createElement("td"); action.append(ack, " ", shelve);
    tr.append(cell(a.signal), cell(a.kind), cell(a.first_sample), cell(`${a.score.toFixed(2)} / ${a.threshold.toFixed(2)}`),
              cell((a.contributors || []).join(", ")), action);
    return tr;
  });
  $("open-alerts").tBodies[0].replaceChildren(...rows);
  $("shelved-alerts").tBodies[0].replaceChildren(...[...shelved.values()].map((s) => {
    const tr = document.createElement("tr");
    tr.className = "shelved"; tr.dataset.kind = s.kind; tr.dataset.signal = s.signal;
    tr.append(cell(s.signal), cell(s.kind), cell(new Date(s.until_iso).toLocaleTimeString()), cell(s.by), cell(s.reason));
    return tr;
  }));
  $("no-alerts").hidden = rows.length > 0;
  $("alarm-count").textContent = `${rows.length} open`;
  $("alarm-count").className = `pill ${rows.length ? "alarm" : "on"}`;
}

function onAlert(msg) {
  const a = msg.data, key = `${a.signal}|${a.kind}`;
  if (msg.type === "alert") openAlerts.set(key, a); else openAlerts.delete(key);
  const li = document.createElement("li");
  li.className = msg.type === "alert" ? "opened" : "cleared";
  li.textContent = `${a.sample}: ${a.message}`;
  $("alert-history").prepend(li);
  while ($("alert-history").children.length > 50) $("alert-history").lastChild.remove();
  renderAlerts();
}

async function acknowledge(alert) {
  const reply = await fetch("/api/v1/alerts/ack", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ session_id: sessionId, signal: alert.signal, kind: alert.kind }) });
  if (!reply.ok) { status(`could not acknowledge: HTTP ${reply.status}`, true); return; }
  alert.acknowledged = true;
  renderAlerts();
}

// operator actions (admin only: /api/admin/...), each with the reason typed in #reason
function operatorStatus(text, isError = false) {
  $("operator-status").textContent = text; $("operator-status").style.color = isError ? "#d92d20" : "";
}

async function operatorCall(method, path, body) {
  const reason = $("reason").value.trim();
  if (body && !reason) { operatorStatus("type the reason for this action first", true); return null; }
  const reply = await fetch(path, { method, headers: { "Content-Type": "application/json" },
    body: body ? JSON.stringify({ ...body, reason }) : undefined });
  const answer = await reply.json().catch(() => ({}));
  if (!reply.ok) {
    operatorStatus(reply.status === 403 ? "operator actions need an admin key" : `HTTP ${reply.status}: ${answer.detail ?? answer.error ?? ""}`, true);
    return null;
  }
  return answer;
}

async function shelveAlert(alert) {
  const answer = await operatorCall("POST", "/api/admin/alerts/shelve", { session_id: sessionId, signal: alert.signal,
    kind: alert.kind, duration_s: 60 * Number($("shelve-minutes").value) });
  if (!answer) return;
  shelved.set(`${alert.signal}|${alert.kind}`, answer.shelved);
  operatorStatus(`${alert.kind} on ${alert.signal} shelved until ${new Date(answer.shelved.until_iso).toLocaleTimeString()}`);
  renderAlerts();
}

const calibrationPath = () => `/api/admin/ensembles/${encodeURIComponent(ensembleInfo.ensemble_name)}/calibration`;

async function acceptNormal() {
  if (cursor < 200) { operatorStatus("stream at least 200 samples first", true); return; }
  const answer = await operatorCall("POST", `${calibrationPath()}/accept`, { session_id: sessionId,
    start: data.timestamps[cursor - 200], end: data.timestamps[cursor - 1] });
  if (answer) operatorStatus(`calibration version ${answer.version} in force: the last ${answer.samples} samples are the new normal`);
  refreshCalibration();
}

async function rollbackCalibration() {
  const answer = await operatorCall("POST", `${calibrationPath()}/rollback`, {});
  if (answer) operatorStatus(`calibration version ${answer.rolled_back} rolled back: version ${answer.in_force} in force`);
  refreshCalibration();
}

async function showProposal() {
  const answer = await operatorCall("GET", `${calibrationPath()}/proposal?session_id=${sessionId}`);
  $("proposal-box").hidden = !answer;
  if (!answer) return;
  const arrow = (t) => `${t.now.toFixed(2)} → ${t.proposed.toFixed(2)}`;
  $("proposal-table").tBodies[0].replaceChildren(...Object.entries(answer.thresholds).map(([target, t]) => {
    const tr = document.createElement("tr");
    tr.append(cell(target), cell(arrow(t.drift_threshold)), cell(arrow(t.spike_threshold)));
    return tr;
  }));
  operatorStatus(`proposed from ${answer.samples} alert-free samples; nothing changes until it is applied`);
}

async function applyProposal() {
  const answer = await operatorCall("POST", `${calibrationPath()}/proposal`, { session_id: sessionId });
  if (answer) { operatorStatus(`recalibration applied: version ${answer.version} in force`); $("proposal-box").hidden = true; }
  refreshCalibration();
}

async function refreshCalibration() {
  if (!ensembleInfo) return;
  const reply = await fetch(calibrationPath());
  if (!reply.ok) { $("calibration-version").textContent = "calibration -"; $("calibration-version").className = "pill off"; return; }
  const inForce = await reply.json();  // the alarm band follows the calibration in force
  $("calibration-version").textContent = `calibration v${inForce.in_force}`;
  $("calibration-version").className = "pill on";
  if (monitor) {
    monitor.thresholds = inForce.thresholds;
    for (const [t, level] of Object.entries(inForce.levels)) Object.assign(monitor.signals[t], level);
  }
}

async function refreshFigures() {
  if (!sessionId) return;
  const reply = await fetch(`/api/v1/alerts/figures?session_id=${sessionId}`);
  if (!reply.ok) return;
  const f = await reply.json();
  const rows = { "alerts per 10 min": f.alerts_per_10min.toFixed(2), "time with an alert standing": `${(100 * f.standing_share).toFixed(1)} %`,
                 "stale alerts (open > 24 h)": f.stale, "chattering alerts": f.chattering,
                 "time in flood": `${(100 * f.flood_share).toFixed(1)} %`, "plant minutes": f.plant_minutes.toFixed(1) };
  $("figures").replaceChildren(...Object.entries(rows).flatMap(([k, v]) => {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k; dd.textContent = v; dd.dataset.figure = k; return [dt, dd];
  }));
}

function followsTwin(target) {
  // false where the twin explains too little of the target to be followed: the monitor watches the reading
  // against its normal level (residual_mean), so the chart shows the reading itself
  return monitor?.signals?.[target]?.follows_twin ?? true;
}

function band(target) {
  // the spike detector's band around the normal residual (models.twin.monitor.residual_monitor): beyond it a single sample alarms
  const signal = monitor?.signals?.[target], limits = monitor?.thresholds?.[target];
  if (!signal || !limits) return [null, null];
  const width = limits.spike_threshold * signal.residual_std;
  return [signal.residual_mean + width, signal.residual_mean - width];
}

function onReply(msg) {
  if (msg.type === "alert" || msg.type === "alert_cleared") { onAlert(msg); return; }
  if (msg.type === "config_ack") {
    sessionId = msg.session_id;
    ensembleInfo = msg.ensemble_info;
    refreshCalibration();
    $("target").replaceChildren(...ensembleInfo.target_signals.map((t) => new Option(t, t)));
    $("download").href = `/api/v1/inference/stream/history/${sessionId}?format=csv`;
    $("download").setAttribute("aria-disabled", "false");
    setConn("streaming", true);
    rateStart = performance.now(); predictions = 0;
    sendNext();
    return;
  }
  if (msg.type === "error") { status(`${msg.error_code}: ${msg.message}`, true); stop(); return; }
  const start = msg.id, target = $("target").value;
  const preds = msg.type === "prediction" ? [msg.data.predictions] : msg.data.predictions;
  const residuals = msg.type === "prediction" ? [msg.data.residuals] : msg.data.residuals;
  const [upper, lower] = band(target), follows = followsTwin(target);
  preds.forEach((p, i) => {
    const measured = data.actual[start + i]?.[target] ?? null;
    push(signalChart, start + i, [p[target], measured]);
    push(residualChart, start + i, [follows ? residuals?.[i]?.[target] ?? null : measured, upper, lower]);
  });
  $("band-note").textContent = !monitor ? "this ensemble has no monitor calibration" : follows
    ? "dashed: the spike band of the monitored residual (measured − lagged prediction)"
    : "dashed: the spike band around the normal level (the twin does not predict this target well enough to be followed)";
  predictions += preds.length;
  const seconds = (performance.now() - rateStart) / 1000;
  push(latencyChart, start, [msg.data.latency_ms ?? performance.now() - sentAt, seconds > 0 ? predictions / seconds : 0]);
  signalChart.update(); latencyChart.update(); residualChart.update();
  cursor = start + preds.length;
  const wait = Math.max(0, 1000 / Number($("rate").value) - (performance.now() - sentAt));
  setTimeout(sendNext, wait);
}

async function start() {
  const ensemble = $("ensemble").value;
  if (!ensemble) return;
  const info = (await (await fetch("/api/v1/ensembles")).json()).ensembles.find((e) => e.ensemble_name === ensemble);
  try {
    const source = $("source").value;
    data = source === "csv"
      ? parseCsv(await $("csv").files[0].text(), info.boundary_signals, info.target_signals)
      : await loadDemo(source.split(":")[1]);
  } catch (err) { status(err.message, true); return; }
  monitor = info.monitor;
  openAlerts.clear(); shelved.clear(); renderAlerts(); $("alert-history").replaceChildren();
  for (const chart of [signalChart, latencyChart, residualChart]) {
    chart.data.labels = []; chart.data.datasets.forEach((d) => (d.data = []));
  }
  cursor = 0; running = true;
  $("start").disabled = true; $("stop").disabled = false;
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/inference/stream`);
  ws.onopen = () => {
    const batch = Math.max(1, Number($("batch").value));
    ws.send(JSON.stringify({ type: "config", data: { ensemble_name: ensemble, mode: batch > 1 ? "batch" : "single", batch_size: batch } }));
  };
  ws.onmessage = (event) => onReply(JSON.parse(event.data));
  ws.onclose = () => { if (running) { status("connection closed", true); stop(); } };
  status(`streaming ${data.rows.length} samples`);
}

function stop() {
  running = false;
  if (ws) ws.close();
  $("start").disabled = false; $("stop").disabled = true;
  setConn("idle", false);
}

async function refreshStats() {
  if (!sessionId) return;
  const stats = await (await fetch("/api/v1/inference/stream/stats")).json();
  const mine = stats.connections.find((c) => c.session_id === sessionId);
  const rows = { "session": sessionId, "ensemble": mine?.ensemble_name ?? ensembleInfo?.ensemble_name, "mode": mine?.mode ?? "-",
                 "predictions (session)": mine?.predictions_count ?? "-", "active connections (server)": stats.active_connections,
                 "predictions (server)": stats.total_predictions, "average latency ms (server)": stats.average_latency_ms.toFixed(2) };
  $("stats").replaceChildren(...Object.entries(rows).flatMap(([k, v]) => {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k; dd.textContent = v; return [dt, dd];
  }));
}

$("source").onchange = () => { if ($("source").value === "csv") $("csv").click(); };
$("start").onclick = start;
$("stop").onclick = stop;
$("accept").onclick = acceptNormal;
$("rollback").onclick = rollbackCalibration;
$("proposal").onclick = showProposal;
$("apply-proposal").onclick = applyProposal;
setInterval(refreshStats, 2000);
setInterval(() => { refreshFigures(); refreshCalibration(); renderAlerts(); }, 3000);
loadEnsembles();
