// StreamForge twin dashboard: stream the demo plant (or a CSV) through /api/v1/inference/stream.
const $ = (id) => document.getElementById(id);
const WINDOW = 300;
let ws = null, running = false, data = null, cursor = 0, sessionId = null, ensembleInfo = null;
let sentAt = 0, predictions = 0, rateStart = 0;

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
  if (!ensembles.length) status("No ensembles on the server: train one with `python -m models.train`.", true);
}

async function loadDemo() {
  const demo = await (await fetch("/api/v1/demo/plant?samples=3000&seed=7")).json();
  return { timestamps: demo.timestamps, rows: demo.boundary.map((r) => Object.fromEntries(demo.boundary_signals.map((s, i) => [s, r[i]]))),
           actual: demo.target.map((r) => Object.fromEntries(demo.target_signals.map((s, i) => [s, r[i]]))) };
}

function parseCsv(text, boundary, targets) {
  const lines = text.trim().split(/\r?\n/);
  const header = lines[0].split(",").map((h) => h.trim());
  const missing = boundary.filter((s) => !header.includes(s));
  if (missing.length) throw new Error(`CSV lacks boundary columns: ${missing.join(", ")}`);
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
  const message = batch === 1
    ? { type: "predict", data: { boundary_signals: data.rows[cursor], timestamp: data.timestamps[cursor] } }
    : { type: "predict_batch", data: { batch: data.rows.slice(cursor, cursor + batch) } };
  message.id = cursor;
  ws.send(JSON.stringify(message));
}

function onReply(msg) {
  if (msg.type === "config_ack") {
    sessionId = msg.session_id;
    ensembleInfo = msg.ensemble_info;
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
  preds.forEach((p, i) => push(signalChart, start + i, [p[target], data.actual[start + i]?.[target] ?? null]));
  predictions += preds.length;
  const seconds = (performance.now() - rateStart) / 1000;
  push(latencyChart, start, [msg.data.latency_ms ?? performance.now() - sentAt, seconds > 0 ? predictions / seconds : 0]);
  signalChart.update(); latencyChart.update();
  cursor = start + preds.length;
  const wait = Math.max(0, 1000 / Number($("rate").value) - (performance.now() - sentAt));
  setTimeout(sendNext, wait);
}

async function start() {
  const ensemble = $("ensemble").value;
  if (!ensemble) return;
  const info = (await (await fetch("/api/v1/ensembles")).json()).ensembles.find((e) => e.ensemble_name === ensemble);
  try {
    data = $("source").value === "csv"
      ? parseCsv(await $("csv").files[0].text(), info.boundary_signals, info.target_signals)
      : await loadDemo();
  } catch (err) { status(err.message, true); return; }
  signalChart.data.labels = []; signalChart.data.datasets.forEach((d) => (d.data = []));
  latencyChart.data.labels = []; latencyChart.data.datasets.forEach((d) => (d.data = []));
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
setInterval(refreshStats, 2000);
loadEnsembles();
