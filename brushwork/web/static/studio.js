// brushwork studio: plain JavaScript, no build step, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  methods: {}, limits: {}, photo: null, photoImage: null, styles: [], job: null, source: null,
  results: [], selected: null, mix: null, previewAbort: null, previewTimer: null,
};

// A token given in the address (?token=...) is kept for this page and removed from the address bar;
// the server also sets a same-site cookie, so images and downloads load without it.
const token = new URLSearchParams(location.search).get("token");
if (token) history.replaceState(null, "", location.pathname);
const withToken = (url) => (token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url);

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    error.retryAfter = Number(response.headers.get("Retry-After") || 0);
    throw error;
  }
  return response;
}
const postJSON = (path, body, extra = {}) =>
  api(path, Object.assign({ method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }, extra));

function say(text) { $("message").textContent = text || ""; }

function chip(thumb, title, onclick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "chip";
  button.title = title;
  const img = document.createElement("img");
  img.src = thumb;
  img.alt = title;
  img.loading = "lazy";
  button.appendChild(img);
  button.addEventListener("click", onclick);
  return button;
}

// ---------------------------------------------------------------- set-up

async function init() {
  try {
    const [methods, styles, health] = await Promise.all([
      api("/api/methods").then((r) => r.json()),
      api("/api/styles").then((r) => r.json()),
      api("/api/health").then((r) => r.json()),
    ]);
    state.limits = methods.limits;
    for (const m of methods.methods) state.methods[m.name] = m;
    const select = $("method");
    for (const m of methods.methods) select.add(new Option(m.name, m.name));
    select.addEventListener("change", methodChanged);
    methodChanged();
    $("opt-max_size").max = String(state.limits.max_size);
    for (const s of styles.samples) {
      const target = s.kind === "photo" ? $("sample-photos") : $("sample-styles");
      target.appendChild(chip(s.thumb, s.name, () =>
        s.kind === "photo" ? setPhoto({ ref: s.ref, image: s.image, thumb: s.thumb }) : addStyle({ ref: s.ref, thumb: s.thumb, name: s.name })));
    }
    for (const b of styles.builtin) {
      $("builtin-styles").appendChild(chip(b.thumb, b.name, () => addStyle({ ref: b.ref, thumb: b.thumb, name: b.name })));
    }
    $("status").textContent = `brushwork ${health.version} · ${health.jobs.workers} workers`;
  } catch (e) {
    $("status").textContent = "cannot reach the studio: " + e.message;
  }
}

function methodChanged() {
  const m = state.methods[$("method").value];
  if (!m) return;
  $("method-summary").textContent = m.summary;
  const fields = $("advanced-fields");
  fields.textContent = "";
  const shown = new Set(["strength", "max_size", "stroke_scale", "preserve_color", "style_weights"]);
  const byName = Object.fromEntries(m.options.map((o) => [o.name, o]));
  for (const name of ["strength", "stroke_scale", "preserve_color"]) {
    const input = $("opt-" + name);
    input.disabled = !byName[name];
  }
  const size = byName.max_size && byName.max_size.default;
  if (size) setSlider("opt-max_size", Math.min(size, state.limits.max_size || size));
  for (const o of m.options) {
    if (shown.has(o.name)) continue;
    const label = document.createElement("label");
    label.textContent = o.name.replace(/_/g, " ");
    let input;
    if (o.type === "choice") {
      input = document.createElement("select");
      for (const c of o.choices) input.add(new Option(c, c));
      input.value = o.default;
    } else if (o.type === "bool") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.checked = !!o.default;
    } else {
      input = document.createElement("input");
      input.type = "number";
      input.step = o.type === "int" ? "1" : "any";
      input.placeholder = o.default === null ? "auto" : String(o.default);
    }
    input.dataset.option = o.name;
    input.dataset.kind = o.type;
    label.appendChild(input);
    fields.appendChild(label);
  }
  schedulePreview();
}

function setSlider(id, value) {
  $(id).value = String(value);
  $(id).nextElementSibling.textContent = String(value);
}

// ---------------------------------------------------------------- pictures

async function upload(file) {
  const response = await api("/api/uploads", { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
  return response.json();
}

async function setPhoto(picture) {
  state.photo = picture;
  $("photo-thumb").src = picture.thumb;
  $("photo-thumb").hidden = false;
  $("before").src = picture.image;
  $("after").removeAttribute("src");
  $("compare-empty").hidden = true;
  ready();
  schedulePreview();
}

function addStyle(style) {
  if (state.styles.length >= (state.limits.max_styles || 4)) { say("at most four styles"); return; }
  style.weight = 1;
  state.styles.push(style);
  drawStyles();
  ready();
  schedulePreview();
}

function drawStyles() {
  const list = $("chosen-styles");
  list.textContent = "";
  state.styles.forEach((style, i) => {
    const li = document.createElement("li");
    const img = document.createElement("img");
    img.src = style.thumb;
    img.alt = style.name || style.ref;
    const weight = document.createElement("input");
    weight.type = "range"; weight.min = "0"; weight.max = "1"; weight.step = "0.05"; weight.value = String(style.weight);
    weight.title = "blend weight";
    weight.addEventListener("input", () => { style.weight = Number(weight.value); schedulePreview(); });
    const remove = document.createElement("button");
    remove.type = "button"; remove.textContent = "×"; remove.title = "remove";
    remove.addEventListener("click", () => { state.styles.splice(i, 1); drawStyles(); ready(); schedulePreview(); });
    li.append(img, weight, remove);
    list.appendChild(li);
  });
  document.querySelectorAll("#pad .corner").forEach((corner, i) => {
    const s = mixable()[i];
    corner.style.backgroundImage = s ? `url("${s.thumb}")` : "";
  });
}

function ready() {
  const ok = !!state.photo && state.styles.length > 0;
  $("run").disabled = !ok;
  $("run-all").disabled = !ok;
}

function dropZone(zone, input, onFiles) {
  input.addEventListener("change", () => { onFiles([...input.files]); input.value = ""; });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); onFiles([...e.dataTransfer.files]); });
}

// ---------------------------------------------------------------- options and previews

function options(method) {
  const m = state.methods[method];
  const names = new Set(m.options.map((o) => o.name));
  const out = {};
  if (names.has("strength")) out.strength = Number($("opt-strength").value);
  if (names.has("max_size")) out.max_size = Number($("opt-max_size").value);
  if (names.has("stroke_scale")) out.stroke_scale = Number($("opt-stroke_scale").value);
  if (names.has("preserve_color")) out.preserve_color = $("opt-preserve_color").checked;
  if (names.has("style_weights") && state.styles.length > 1) {
    const w = state.styles.map((s) => s.weight);
    if (w.some((x) => x > 0)) out.style_weights = w;
  }
  if (method === $("method").value) { // the advanced fields belong to the selected method
    for (const input of document.querySelectorAll("#advanced-fields [data-option]")) {
      const name = input.dataset.option;
      if (input.dataset.kind === "bool") out[name] = input.checked;
      else if (input.dataset.kind === "choice") out[name] = input.value;
      else if (input.value !== "") out[name] = Number(input.value);
    }
  }
  return out;
}

function request(method) {
  return { method, content: state.photo.ref, styles: state.styles.map((s) => s.ref), options: options(method) };
}

function schedulePreview() {
  clearTimeout(state.previewTimer);
  if (!state.photo || !state.styles.length || state.job) return;
  state.previewTimer = setTimeout(preview, 150);
}

async function preview() {
  if (state.previewAbort) state.previewAbort.abort();
  const abort = new AbortController();
  state.previewAbort = abort;
  const body = Object.assign(request($("method").value), { size: state.limits.preview_size || 320 });
  delete body.options.max_size;
  try {
    const response = await postJSON("/api/preview", body, { signal: abort.signal });
    const url = URL.createObjectURL(await response.blob());
    showAfter(url);
    say("");
  } catch (e) {
    if (e.name === "AbortError") return;
    if (e.status === 429) { state.previewTimer = setTimeout(preview, 400); return; }
    say(e.message);
  }
}

function showAfter(url) {
  $("after").src = url;
  $("compare-empty").hidden = true;
}

// ---------------------------------------------------------------- jobs

async function run(methods) {
  say("");
  for (const method of methods) {
    try {
      const job = await (await postJSON("/api/jobs", request(method))).json();
      const card = addCard(job);
      await follow(job, card);
    } catch (e) {
      say(e.status === 429 || e.status === 503 ? `${e.message} (retry in ${e.retryAfter} s)` : e.message);
      if (e.status !== 422) break;
    }
  }
}

function follow(job, card) {
  return new Promise((resolve) => {
    state.job = job;
    $("cancel").disabled = false;
    $("progress").hidden = false;
    $("progress-bar").removeAttribute("value");
    $("progress-text").textContent = `${job.method}: queued`;
    $("progress-preview").hidden = true;
    const source = new EventSource(withToken(job.events));
    state.source = source;
    const finish = (text) => {
      source.close();
      state.job = null;
      state.source = null;
      $("cancel").disabled = true;
      $("progress-text").textContent = text;
      resolve();
    };
    source.addEventListener("started", () => { $("progress-text").textContent = `${job.method}: running`; });
    source.addEventListener("progress", (e) => {
      const p = JSON.parse(e.data);
      if (p.total) $("progress-bar").value = p.step / p.total; else $("progress-bar").removeAttribute("value");
      const losses = Object.entries(p.losses || {}).map(([k, v]) => `${k} ${v.toPrecision(3)}`).join(" · ");
      $("progress-text").textContent = `${job.method}: ${p.stage} ${p.step}/${p.total || "?"} ${losses} ${p.message || ""}`;
      if (p.preview) { $("progress-preview").src = p.preview; $("progress-preview").hidden = false; showAfter(p.preview); }
    });
    source.addEventListener("done", (e) => {
      const data = JSON.parse(e.data);
      $("progress-bar").value = 1;
      const url = data.result + "?v=" + job.id;
      card.querySelector("img").src = url;
      card.querySelector("p").textContent = `${job.method} · done`;
      card.dataset.result = data.result;
      select(card);
      finish(`${job.method}: done`);
    });
    source.addEventListener("failed", (e) => {
      card.classList.add("failed");
      card.querySelector("p").textContent = `${job.method} · ${JSON.parse(e.data).error}`;
      finish(`${job.method}: failed`);
    });
    source.addEventListener("cancelled", () => {
      card.classList.add("failed");
      card.querySelector("p").textContent = `${job.method} · cancelled`;
      finish(`${job.method}: cancelled`);
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) finish(`${job.method}: connection lost`);
    };
  });
}

function addCard(job) {
  const card = document.createElement("div");
  card.className = "card";
  card.dataset.job = job.id;
  card.dataset.method = job.method;
  const img = document.createElement("img");
  img.alt = job.method;
  const p = document.createElement("p");
  p.textContent = `${job.method} · queued`;
  card.append(img, p);
  card.addEventListener("click", () => card.dataset.result && select(card));
  $("results").prepend(card);
  return card;
}

function select(card) {
  document.querySelectorAll(".card.selected").forEach((c) => c.classList.remove("selected"));
  card.classList.add("selected");
  showAfter(card.dataset.result + "?v=" + card.dataset.job);
  const link = $("download");
  link.href = card.dataset.result + "?download=1";
  link.setAttribute("download", `brushwork-${card.dataset.method}-${card.dataset.job.slice(0, 8)}.png`);
  link.textContent = `Download ${card.dataset.method} result`;
  link.hidden = false;
}

async function cancel() {
  if (!state.job) return;
  try { await api(`/api/jobs/${state.job.id}/cancel`, { method: "POST" }); } catch (e) { say(e.message); }
}

// ---------------------------------------------------------------- latent space and mix pad

async function sampleLatent() {
  const seed = Math.max(0, Math.floor(Number($("latent-seed").value) || 0));
  const temperature = Number($("latent-temp").value) || 1;
  $("latent-sample").disabled = true;
  try {
    const data = await (await postJSON("/api/latent/sample", { n: 6, seed, temperature })).json();
    const box = $("latent-styles");
    box.textContent = "";
    data.styles.forEach((s, i) => box.appendChild(chip(s.thumb, `latent ${seed}.${i}`, () =>
      addStyle({ ref: s.ref, thumb: s.thumb, name: `latent ${seed}.${i}` }))));
    $("latent-seed").value = String(seed + 1);
  } catch (e) { say(e.message); } finally { $("latent-sample").disabled = false; }
}

const mixable = () => state.styles.filter((s) => !s.ref.startsWith("builtin:")).slice(0, 4);

let padBusy = false;
let padPending = null;
async function padMove(event) {
  const pad = $("pad");
  const box = pad.getBoundingClientRect();
  const x = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
  const y = Math.min(1, Math.max(0, (event.clientY - box.top) / box.height));
  $("pad-dot").style.left = `${x * 100}%`;
  $("pad-dot").style.top = `${y * 100}%`;
  const styles = mixable();
  if (styles.length < 2) { say("choose two to four picture or latent styles to mix"); return; }
  // bilinear weights of the four corners: top-left, top-right, bottom-left, bottom-right
  const corners = [(1 - x) * (1 - y), x * (1 - y), (1 - x) * y, x * y];
  const weights = styles.map((_, i) => corners[i]);
  if (styles.length < 4) { // fewer styles: the missing corners' weight goes to the others evenly
    const rest = corners.slice(styles.length).reduce((a, b) => a + b, 0) / styles.length;
    weights.forEach((_, i) => { weights[i] += rest; });
  }
  padPending = { styles: styles.map((s) => s.ref), weights };
  if (padBusy) return;
  padBusy = true;
  while (padPending) {
    const body = padPending;
    padPending = null;
    try {
      const mix = await (await postJSON("/api/latent/mix", body)).json();
      state.mix = mix;
      $("mix-use").disabled = false;
      if (state.photo) {
        const shot = await postJSON("/api/preview", { method: "fast", content: state.photo.ref, styles: [mix.ref], size: 256 });
        $("mix-preview").src = URL.createObjectURL(await shot.blob());
      } else {
        $("mix-preview").src = mix.thumb;
      }
      $("mix-preview").hidden = false;
    } catch (e) {
      if (e.status !== 429) { say(e.message); continue; }
      if (!padPending) padPending = body; // busy: try the newest point again shortly
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
  }
  padBusy = false;
}

// ---------------------------------------------------------------- video

async function uploadVideo(file) {
  try {
    say("uploading the clip…");
    const response = await api("/api/videos", { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
    state.video = await response.json();
    $("video-name").textContent = `${state.video.width}×${state.video.height}, ${state.video.frames || "?"} frames`;
    $("video-run").disabled = false;
    say("");
  } catch (e) { say(e.message); }
}

async function runVideo() {
  if (!state.video || !state.styles.length) { say("pick a clip and a style"); return; }
  const method = $("method").value;
  const body = { method, content: state.video.ref, styles: state.styles.map((s) => s.ref), options: options(method) };
  delete body.options.max_size;
  try {
    const job = await (await postJSON("/api/jobs", body)).json();
    $("video-run").disabled = true;
    $("video-progress").hidden = false;
    const source = new EventSource(withToken(job.events));
    source.addEventListener("progress", (e) => {
      const p = JSON.parse(e.data);
      if (p.total) $("video-progress").value = p.step / p.total;
    });
    const end = () => { source.close(); $("video-run").disabled = false; };
    source.addEventListener("done", (e) => {
      const url = JSON.parse(e.data).result;
      $("video-progress").value = 1;
      $("video-out").src = url;
      $("video-out").hidden = false;
      $("video-download").href = url + "?download=1";
      $("video-download").hidden = false;
      end();
    });
    source.addEventListener("failed", (e) => { say(JSON.parse(e.data).error); end(); });
    source.addEventListener("cancelled", end);
  } catch (e) { say(e.message); }
}

// ---------------------------------------------------------------- camera

const camera = { stream: null, socket: null, timer: null, frames: 0, since: 0 };

async function startCamera() {
  const style = state.styles[0];
  if (!style) { say("choose a style first"); return; }
  try {
    camera.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: false });
  } catch (e) { say("no camera: " + e.message); return; }
  const video = $("camera-video");
  video.srcObject = camera.stream;
  await video.play();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(withToken(`${scheme}://${location.host}/api/camera`));
  socket.binaryType = "blob";
  camera.socket = socket;
  const canvas = document.createElement("canvas");
  const side = state.limits.camera_size || 320;
  const send = () => {
    if (socket.readyState !== WebSocket.OPEN || !video.videoWidth) return;
    const scale = Math.min(1, side / Math.max(video.videoWidth, video.videoHeight));
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    canvas.toBlob((blob) => blob && socket.readyState === WebSocket.OPEN && socket.send(blob), "image/jpeg", 0.8);
  };
  socket.onopen = () => {
    const s = state.styles.slice(0, 1).map((x) => x.ref);
    socket.send(JSON.stringify({ method: "fast", styles: s, options: { strength: Number($("opt-strength").value) } }));
  };
  socket.onmessage = (e) => {
    if (typeof e.data === "string") {
      const msg = JSON.parse(e.data);
      if (msg.error) say("camera: " + msg.error);
      if (msg.ready) { camera.since = performance.now(); send(); }
      return;
    }
    const old = $("camera-out").src;
    $("camera-out").src = URL.createObjectURL(e.data);
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    camera.frames += 1;
    const seconds = (performance.now() - camera.since) / 1000;
    $("camera-fps").textContent = `${(camera.frames / seconds).toFixed(1)} frames/s`;
    $("camera-out").dataset.frames = String(camera.frames);
    send();
  };
  socket.onclose = () => stopCamera();
  $("camera-start").disabled = true;
  $("camera-stop").disabled = false;
}

function stopCamera() {
  if (camera.socket) { camera.socket.onclose = null; camera.socket.close(); }
  if (camera.stream) camera.stream.getTracks().forEach((t) => t.stop());
  camera.socket = null;
  camera.stream = null;
  camera.frames = 0;
  $("camera-start").disabled = false;
  $("camera-stop").disabled = true;
}

// ---------------------------------------------------------------- wiring

document.addEventListener("DOMContentLoaded", () => {
  dropZone($("photo-drop"), $("photo-input"), async (files) => {
    if (!files.length) return;
    try { say("uploading…"); await setPhoto(await upload(files[0])); say(""); } catch (e) { say(e.message); }
  });
  dropZone($("style-drop"), $("style-input"), async (files) => {
    for (const file of files) {
      try { const p = await upload(file); addStyle({ ref: p.ref, thumb: p.thumb, name: "upload" }); } catch (e) { say(e.message); }
    }
  });
  document.querySelectorAll(".slider input").forEach((input) => input.addEventListener("input", () => {
    input.nextElementSibling.textContent = input.value;
    schedulePreview();
  }));
  $("opt-preserve_color").addEventListener("change", schedulePreview);
  $("advanced-fields").addEventListener("change", schedulePreview);
  document.querySelectorAll(".tabs button").forEach((tab) => tab.addEventListener("click", () => {
    document.querySelectorAll(".tabs button").forEach((t) => t.setAttribute("aria-selected", String(t === tab)));
    document.querySelectorAll(".tab").forEach((panel) => { panel.hidden = panel.id !== tab.dataset.tab; });
  }));
  $("compare-range").addEventListener("input", (e) => {
    $("after-clip").style.clipPath = `inset(0 0 0 ${e.target.value}%)`;
  });
  $("run").addEventListener("click", () => run([$("method").value]));
  $("run-all").addEventListener("click", () => run(Object.keys(state.methods)));
  $("cancel").addEventListener("click", cancel);
  $("latent-sample").addEventListener("click", sampleLatent);
  $("pad").addEventListener("pointerdown", (e) => { $("pad").setPointerCapture(e.pointerId); padMove(e); });
  $("pad").addEventListener("pointermove", (e) => { if (e.buttons) padMove(e); });
  $("mix-use").addEventListener("click", () => state.mix && addStyle({ ref: state.mix.ref, thumb: state.mix.thumb, name: "mix" }));
  $("video-input").addEventListener("change", (e) => e.target.files.length && uploadVideo(e.target.files[0]));
  $("video-run").addEventListener("click", runVideo);
  $("camera-start").addEventListener("click", startCamera);
  $("camera-stop").addEventListener("click", stopCamera);
  init();
});
