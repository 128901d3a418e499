// StreamForge product enrollment: product -> photos (cut out by the server, corrected by a box) -> training job.
const $ = (id) => document.getElementById(id);
let enrollment = null, polling = null, shownPhotos = "";

async function api(method, path, body) {
  const response = await fetch(path, { method, headers: body ? { "Content-Type": "application/json" } : {},
                                       body: body ? JSON.stringify(body) : undefined });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || response.statusText);
  return data;
}

const readAsDataURL = (file) => new Promise((resolve, reject) => {
  const reader = new FileReader();
  reader.onload = () => resolve(reader.result);
  reader.onerror = reject;
  reader.readAsDataURL(file);
});

function photoUrl(index, kind) {
  return `/api/enrollments/${enrollment.enrollment_id}/photos/${index}/${kind}?v=${Date.now()}`;
}

// one photo: the photo (drag a box on it to cut again) and its cut-out
function photoCard(photo, index) {
  const card = document.createElement("div");
  card.className = "cutout";
  const canvas = document.createElement("canvas");
  const image = new Image();
  image.onload = () => {
    canvas.width = image.width; canvas.height = image.height;
    draw();
  };
  image.src = photoUrl(index, "photo.jpg");
  let box = photo.box, start = null;
  function draw() {
    const g = canvas.getContext("2d");
    g.drawImage(image, 0, 0);
    g.strokeStyle = "#12b76a"; g.lineWidth = Math.max(2, image.width / 150);
    g.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
  }
  const at = (event) => {
    const r = canvas.getBoundingClientRect();
    return [Math.round((event.clientX - r.left) * canvas.width / r.width), Math.round((event.clientY - r.top) * canvas.height / r.height)];
  };
  canvas.onpointerdown = (event) => { start = at(event); };
  canvas.onpointermove = (event) => {
    if (!start) return;
    const p = at(event);
    box = [Math.min(start[0], p[0]), Math.min(start[1], p[1]), Math.max(start[0], p[0]), Math.max(start[1], p[1])];
    draw();
  };
  canvas.onpointerup = async () => {
    if (!start) return;
    start = null;
    try {
      show(await api("PUT", `/api/enrollments/${enrollment.enrollment_id}/photos/${index}/box`, { box }));
    } catch (err) { $("train-status").textContent = err.message; }
  };
  const cut = document.createElement("img");
  cut.alt = `cut-out ${index + 1}`;
  cut.src = photoUrl(index, "cutout.png");
  const note = document.createElement("div");
  note.className = photo.warning ? "warning" : "muted";
  note.textContent = photo.warning || `product covers ${Math.round(photo.coverage * 100)}% of its box`;
  card.append(canvas, cut, note);
  return card;
}

function show(record) {
  enrollment = record;
  const photos = JSON.stringify(record.photos);
  if (photos !== shownPhotos) {  // redraw the photos only when they changed (not on every progress poll)
    shownPhotos = photos;
    $("cutouts").replaceChildren(...record.photos.map(photoCard));
  }
  $("photo-count").textContent = `${record.photos.length} photos`;
  const collecting = record.status === "collecting";
  $("photos").disabled = !collecting;
  $("train").disabled = !collecting || record.photos.length < 5;
  $("progress").value = record.progress || 0;
  $("train-status").textContent = `${record.status}: ${record.message || ""}`;
  if (record.metrics) {
    const sku = record.sku;
    const lines = [`new product ${sku}: composite mAP50 ${record.metrics.composite_map50_per_class[sku] ?? "-"}`,
                   `phantoms per 1,000 real frames: ${record.live_metrics.phantoms_per_1000} -> ${record.metrics.phantoms_per_1000}`];
    lines.push(record.refused && record.refused.length ? "refused:\n  " + record.refused.join("\n  ") : "passed the quality gate");
    $("gate").textContent = lines.join("\n");
  }
}

async function follow() {
  const record = await api("GET", `/api/enrollments/${enrollment.enrollment_id}`);
  show(record);
  if (["queued", "training"].includes(record.status)) return;
  clearInterval(polling);
  polling = null;
  loadVersions();
}

async function loadVersions() {
  const { live, versions } = await api("GET", "/api/detector/versions");
  $("versions").tBodies[0].replaceChildren(...versions.map((v) => {
    const row = document.createElement("tr");
    const metrics = (v.meta && v.meta.metrics) || {};
    const cells = [v.version + (v.version === live ? " (live)" : ""), v.status, v.source,
                   metrics.composite_map50 ?? "", metrics.phantoms_per_1000 ?? ""];
    row.append(...cells.map((text) => { const td = document.createElement("td"); td.textContent = text; return td; }));
    const action = document.createElement("td");
    if (v.version !== live && (v.status === "passed" || v.status === "configured")) {
      const button = document.createElement("button");
      button.textContent = "Make live";
      button.onclick = async () => { await api("PUT", "/api/detector/live", { version: v.version }); loadVersions(); };
      action.append(button);
    }
    row.append(action);
    return row;
  }));
}

$("product-form").onsubmit = async (event) => {
  event.preventDefault();
  try {
    show(await api("POST", "/api/enrollments", { sku: $("sku").value, name: $("name").value, price: Number($("price").value) }));
    $("product-result").textContent = `enrollment ${enrollment.enrollment_id} started: add photos`;
  } catch (err) { $("product-result").textContent = err.message; }
};

$("photos").onchange = async () => {
  const photos = await Promise.all([...$("photos").files].map(readAsDataURL));
  $("photos").value = "";
  $("train-status").textContent = "cutting out…";
  try {
    show(await api("POST", `/api/enrollments/${enrollment.enrollment_id}/photos`, { photos }));
  } catch (err) { $("train-status").textContent = err.message; }
};

$("train").onclick = async () => {
  try {
    show(await api("POST", `/api/enrollments/${enrollment.enrollment_id}/train`));
    polling = setInterval(follow, 1000);
  } catch (err) { $("train-status").textContent = err.message; }
};

loadVersions();
