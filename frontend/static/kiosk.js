// StreamForge kiosk: camera -> /ws/{session} (binary JPEG frames), boxes, login, cart, checkout.
const params = new URLSearchParams(location.search);
const FPS = Number(params.get("fps") || 5);
const sessionId = params.get("session") || localStorage.getItem("sf-session") || `kiosk-${crypto.randomUUID().slice(0, 8)}`;
localStorage.setItem("sf-session", sessionId);
const $ = (id) => document.getElementById(id);
$("sid").textContent = sessionId;
const video = $("video"), overlay = $("overlay"), grab = document.createElement("canvas");
let ws = null, retry = 500, sent = 0, lastBoxes = [], inFlight = false;

function connect() {
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/${encodeURIComponent(sessionId)}`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { retry = 500; setConn(true); };
  ws.onclose = () => { setConn(false); setTimeout(connect, retry); retry = Math.min(retry * 2, 8000); };
  ws.onmessage = (event) => handle(JSON.parse(event.data));
}
function setConn(on) { $("conn").textContent = on ? "connected" : "reconnecting…"; $("conn").className = `pill ${on ? "on" : "off"}`; }

function handle(msg) {
  switch (msg.type) {
    case "frame_received": $("dropped").textContent = msg.dropped_frames ?? 0; break;
    case "detections": inFlight = false; lastBoxes = msg.detections; drawBoxes(); break;
    case "face_detected": $("user").textContent = `Welcome, ${msg.user.name} (${msg.user.phone})`; $("user").className = ""; break;
    case "cart_updated": renderCart(msg.cart, msg.total); break;
    case "error": inFlight = false; console.warn("server error", msg); break;
  }
}

function renderCart(cart, total) {
  const body = $("cart").querySelector("tbody");
  body.replaceChildren(...cart.map((line, index) => {
    const row = document.createElement("tr");
    row.innerHTML = `<td></td><td>${line.quantity}</td><td>${line.price * line.quantity}</td><td><button aria-label="remove">✕</button></td>`;
    row.cells[0].textContent = line.name;
    row.querySelector("button").onclick = () => ws.send(JSON.stringify({ type: "cart_remove", index }));
    return row;
  }));
  $("total").textContent = total;
}

function drawBoxes() {
  const w = video.videoWidth, h = video.videoHeight;
  if (!w) return;
  overlay.width = w; overlay.height = h;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  ctx.lineWidth = Math.max(2, w / 200); ctx.font = `${Math.max(14, w / 35)}px system-ui`;
  for (const d of lastBoxes) {
    const [x0, y0, x1, y1] = d.box;
    ctx.strokeStyle = "#2e90fa"; ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    const label = `${d.name} ${(d.score * 100).toFixed(0)}%`;
    ctx.fillStyle = "#2e90fa"; ctx.fillRect(x0, Math.max(0, y0 - 22), ctx.measureText(label).width + 8, 22);
    ctx.fillStyle = "#fff"; ctx.fillText(label, x0 + 4, Math.max(16, y0 - 5));
  }
}

function snapshot(type = "image/jpeg") {
  grab.width = video.videoWidth; grab.height = video.videoHeight;
  grab.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => grab.toBlob(resolve, type, 0.8));
}

async function sendFrame() {
  if (ws && ws.readyState === WebSocket.OPEN && video.videoWidth && !inFlight) {
    const blob = await snapshot();
    if (blob) { inFlight = true; ws.send(await blob.arrayBuffer()); sent++; }
  }
}
setInterval(sendFrame, 1000 / FPS);
setInterval(() => { $("fps").textContent = sent; sent = 0; }, 1000);
setInterval(() => { inFlight = false; }, 3000);  // never stall if a reply was lost

$("checkout").onclick = async () => {
  const out = $("checkout-result");
  const reply = await fetch("/api/checkout", { method: "POST", headers: { "content-type": "application/json" },
                                                body: JSON.stringify({ session_id: sessionId }) });
  const body = await reply.json();
  out.className = reply.ok ? "ok" : "error";
  out.textContent = reply.ok ? `Paid ${body.order.total} - order ${body.transaction_id.slice(0, 8)}` : (body.message || body.error || body.detail);
};

$("register").onsubmit = async (event) => {
  event.preventDefault();
  const form = new FormData(event.target), out = $("register-result");
  const file = form.get("photo");
  const blob = file && file.size ? file : await snapshot();
  const photo = await new Promise((resolve) => { const r = new FileReader(); r.onload = () => resolve(r.result); r.readAsDataURL(blob); });
  const reply = await fetch("/api/users", { method: "POST", headers: { "content-type": "application/json" },
                                             body: JSON.stringify({ name: form.get("name"), phone: form.get("phone"), photos: [photo] }) });
  const body = await reply.json();
  out.className = reply.ok ? "ok" : "error";
  out.textContent = reply.ok ? `Registered ${body.user.name}. Look at the camera to log in.` : (typeof body.detail === "string" ? body.detail : body.error || "registration failed: check name, phone and photo");
};

navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false })
  .then((stream) => { video.srcObject = stream; })
  .catch((err) => { $("user").textContent = `Camera unavailable: ${err.message}`; });
connect();
