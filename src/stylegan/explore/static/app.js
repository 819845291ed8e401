// stylegan explore: the page. Plain JavaScript, no build step, no network access beyond this server.
//
// The whole view lives in `state`, mirrored into the URL query (so a link reproduces a view) and sent
// with every request. Every change sends a request at once; the server renders only the newest one
// per panel (older ones come back 204) and the page never shows an answer older than one it shows.
//
// The defaults come from the server (api/defaults; declared once, in the explorer's params.py): this
// file holds no copy of them, so the page and the API cannot disagree on what an absent key means.
"use strict";

let defaults = null;       // api/defaults: {view, conditional_class, project_steps, ..., ganspace_samples}
const state = {};          // query key -> value, as strings; filled by start()
const UNTRUNCATED = "1";   // psi that shows a w as it is (whatever the default psi)
const CLIENT = Math.random().toString(36).slice(2, 10);  // names this page's requests for stale dropping
const $ = (id) => document.getElementById(id);
const slots = {};          // panel -> {sent, shown, url}
let net = null;            // /api/network
let playing = "";          // the loop shown in the main image: "" (none), "seeds" or "eq" (LOOPS)
let dirSets = {};          // Edit panel: /api/directions' sets by id

// ------------------------------------------------------------------ requests

function query(extra = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...state, ...extra })) {
    if (v !== "" && v !== undefined && v !== null) q.set(k, v);
  }
  if (!state.mix_seed) q.delete("mix");
  return q;
}

function saveUrl() {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) if (v !== defaults.view[k]) q.set(k, v);
  const s = q.toString();
  history.replaceState(null, "", s ? `?${s}` : location.pathname);
  $("download-png").href = `api/image?${query({ fmt: "png", download: "1" })}`;
  $("download-w").href = `api/w.npz?${query()}`;
  $("edit-download").href = `api/directions.npz?${new URLSearchParams({ dirs: state.dirs })}`;
}

function showMessage(text) {
  const m = $("message");
  m.textContent = text || "";
  m.hidden = !text;
}

async function errorText(r) {
  try { return (await r.json()).error || `HTTP ${r.status}`; } catch { return `HTTP ${r.status}`; }
}

async function getJson(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(await errorText(r));
  return r.json();
}

// Fetch one panel's image. A new request aborts the panel's previous one (so the browser never
// queues stale requests behind its connection limit) and an answer older than the one shown is
// never shown; the server in turn skips queued renders that a newer request superseded.
async function load(slot, route, img, extra = {}) {
  const s = (slots[slot] ||= { sent: 0, shown: 0, url: null, ctrl: null });
  const seq = ++s.sent;
  if (s.ctrl) s.ctrl.abort();
  const ctrl = (s.ctrl = new AbortController());
  const t0 = performance.now();
  let r, blob;
  try {
    r = await fetch(`api/${route}?${query({ ...extra, client: CLIENT })}`, { signal: ctrl.signal });
    if (r.status === 204) return false;              // superseded: the server dropped it
    if (!r.ok) {
      if (seq > s.shown) showMessage(await errorText(r));
      return false;
    }
    blob = await r.blob();
  } catch (e) {
    if (e.name !== "AbortError") showMessage(`server unreachable (${e.message})`);
    return false;
  }
  if (seq <= s.shown) return false;                  // an older answer after a newer one
  s.shown = seq;
  if (s.url) URL.revokeObjectURL(s.url);
  s.url = URL.createObjectURL(blob);
  img.src = s.url;
  img.dataset.seq = String(seq);
  img.dataset.query = query(extra).toString();
  showMessage("");
  if (slot === "main" || slot === "loop") {
    const ms = r.headers.get("X-Render-Ms");
    $("timing").textContent = `render ${Number(ms).toFixed(1)} ms · round trip ${(performance.now() - t0).toFixed(1)} ms`;
  }
  return true;
}

// Changes made in one task (a script, a burst of events) become one request per panel.
let refreshQueued = false;
function refresh() {
  if (refreshQueued) return;
  refreshQueued = true;
  queueMicrotask(() => { refreshQueued = false; refreshNow(); });
}

function refreshNow() {
  saveUrl();
  describe();
  if (!playing) load("main", "image", $("img-main"));
  $("mix-figure").hidden = !state.mix_seed;
  if (state.mix_seed) load("mix", "mixing", $("img-mix"));
  const variation = Boolean(state.var) && hasNoise();
  $("variation-figure").hidden = !variation;
  if (variation) load("variation", "variation", $("img-variation"));
}

// StyleGAN3 networks: an input transform (translate / rotate) and no per-pixel noise.
function isSG3() { return Boolean(net && net.input_transform); }
function hasNoise() { return !net || net.noise_inputs > 0; }

function set(changes) {
  Object.assign(state, changes);
  syncControls();
  refresh();
}

// ------------------------------------------------------------------ controls <-> state

function describe() {
  const latent = state.w ? `latent ${state.w}` : `seed ${state.seed}`;
  const parts = [latent, `psi ${Number(state.psi).toFixed(2)}`];
  if (state.cutoff) parts.push(`cutoff ${state.cutoff}`);
  if (state.class) parts.push(`class ${state.class}`);
  const strength = state.noise_strength !== defaults.view.noise_strength ? ` ×${state.noise_strength}` : "";
  if (hasNoise()) parts.push(`noise ${state.noise}${strength}`);
  if (isSG3() && (Number(state.tx) || Number(state.ty))) parts.push(`translate ${Number(state.tx)}, ${Number(state.ty)}`);
  if (isSG3() && Number(state.rotate)) parts.push(`rotate ${Number(state.rotate)}°`);
  if (isSG3() && state.untransform) parts.push("untransformed");
  if (playing === "eq") parts.push(`transform loop (${state.eq})`);
  if (state.mix_seed) parts.push(`mixed with seed ${state.mix_seed} (${state.mix || "no styles"})`);
  if (state.edit) parts.push(`edit ${state.edit} (${dirSets[state.dirs] ? dirSets[state.dirs].label : state.dirs})`);
  if (net) parts.push(`${net.resolution}×${net.resolution}`);
  $("caption").textContent = parts.join(" · ");
  $("mix-label-a").textContent = state.w ? `latent ${state.w}` : `seed ${state.seed}`;
  $("mix-label-b").textContent = `seed ${state.mix_seed}`;
  $("mix-label-c").textContent = `styles ${state.mix || "none"} from seed ${state.mix_seed}`;
  $("std-label").textContent = `std over ${state.std_samples} draws`;
  $("mix-desc").textContent = state.mix_seed ? `taking styles “${state.mix || "none"}” from the second seed` : "";
  for (const b of document.querySelectorAll("#mix-presets button")) {
    b.classList.toggle("active", Boolean(state.mix_seed) && b.dataset.mix === state.mix);
  }
}

function syncControls() {
  $("seed").value = state.seed;
  $("seed-slider").value = Math.min(Number(state.seed), 9999);
  $("w-source").hidden = !state.w;
  $("w-name").textContent = state.w;
  $("psi").value = state.psi;
  $("psi-out").textContent = Number(state.psi).toFixed(2);
  $("cutoff").value = state.cutoff;
  $("class").value = state.class;
  for (const r of document.querySelectorAll("input[name=noise]")) r.checked = r.value === state.noise;
  $("noise-strength").value = state.noise_strength;
  $("noise-strength-out").textContent = `${Number(state.noise_strength).toFixed(2)}×`;
  $("variation").checked = Boolean(state.var);
  $("std-samples").value = state.std_samples;
  $("mix-on").checked = Boolean(state.mix_seed);
  if (state.mix_seed) $("mix-seed").value = state.mix_seed;
  $("fmt").value = state.fmt;
  $("anim-seeds").value = state.anim_seeds;
  $("anim-space").value = state.anim_space;
  $("anim-speed").value = state.speed;
  $("anim-speed-out").textContent = `${Number(state.speed).toFixed(2)} seeds/s`;
  for (const k of ["tx", "ty"]) {
    $(k).value = state[k];
    $(`${k}-out`).textContent = `${Number(state[k]).toFixed(3)} w`;
  }
  $("rotate").value = state.rotate;
  $("rotate-out").textContent = `${Number(state.rotate).toFixed(1)}°`;
  $("untransform").checked = Boolean(state.untransform);
  $("eq-motion").value = state.eq;
  $("eq-speed").value = state.eq_speed;
  $("eq-speed-out").textContent = `${Number(state.eq_speed).toFixed(2)}/s`;
  syncEdit();
}

function bind() {
  $("seed").addEventListener("input", (e) => { if (e.target.value !== "") set({ seed: e.target.value, w: "" }); });
  $("seed-slider").addEventListener("input", (e) => set({ seed: e.target.value, w: "" }));
  $("seed-random").addEventListener("click", () => set({ seed: String(Math.floor(Math.random() * 100000)), w: "" }));
  $("w-clear").addEventListener("click", () => set({ w: "" }));
  $("w-file").addEventListener("change", (e) => uploadW(e.target.files[0]));
  $("class").addEventListener("change", (e) => set({ class: e.target.value }));
  $("psi").addEventListener("input", (e) => set({ psi: e.target.value }));
  $("cutoff").addEventListener("change", (e) => set({ cutoff: e.target.value }));
  for (const r of document.querySelectorAll("input[name=noise]")) {
    r.addEventListener("change", (e) => set({ noise: e.target.value }));
  }
  $("noise-strength").addEventListener("input", (e) => set({ noise_strength: e.target.value }));
  $("variation").addEventListener("change", (e) => set({ var: e.target.checked ? "1" : "" }));
  $("std-samples").addEventListener("change", (e) => set({ std_samples: e.target.value }));
  $("mix-on").addEventListener("change", (e) => set({ mix_seed: e.target.checked ? $("mix-seed").value : "" }));
  $("mix-seed").addEventListener("input", (e) => { if (state.mix_seed && e.target.value !== "") set({ mix_seed: e.target.value }); });
  for (const b of document.querySelectorAll("#mix-presets button")) {
    b.addEventListener("click", () => set({ mix: b.dataset.mix, mix_seed: state.mix_seed || $("mix-seed").value }));
  }
  $("mix-range").addEventListener("click", () => {
    const a = Number($("mix-from").value), b = Number($("mix-to").value);
    set({ mix: b < a ? "" : `${a}-${b}`, mix_seed: state.mix_seed || $("mix-seed").value });
  });
  $("fmt").addEventListener("change", (e) => set({ fmt: e.target.value }));
  $("copy-link").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(location.href); showMessage(""); $("timing").textContent = "link copied"; }
    catch { showMessage("copy failed: the link is in the address bar"); }
  });
  $("anim-seeds").addEventListener("change", (e) => set({ anim_seeds: e.target.value }));
  $("anim-space").addEventListener("change", (e) => set({ anim_space: e.target.value }));
  $("anim-speed").addEventListener("input", (e) => set({ speed: e.target.value }));
  $("anim-play").addEventListener("click", () => (playing === "seeds" ? stop() : play("seeds")));
  for (const k of ["tx", "ty", "rotate"]) $(k).addEventListener("input", (e) => set({ [k]: e.target.value }));
  $("untransform").addEventListener("change", (e) => set({ untransform: e.target.checked ? "1" : "" }));
  $("transform-reset").addEventListener("click", () => set({ tx: defaults.view.tx, ty: defaults.view.ty, rotate: defaults.view.rotate }));
  $("eq-motion").addEventListener("change", (e) => set({ eq: e.target.value }));
  $("eq-speed").addEventListener("input", (e) => set({ eq_speed: e.target.value }));
  $("eq-play").addEventListener("click", () => (playing === "eq" ? stop() : play("eq")));
  $("snapshot").addEventListener("change", (e) => switchSnapshot(e.target.value));
  bindProjection();
  bindEdit();
}

// ------------------------------------------------------------------ network panel

function fillNetwork(info) {
  net = info;
  const rows = [
    ["kind", info.kind], ["resolution", `${info.resolution}×${info.resolution}×${info.channels}`],
    ["z / w dims", `${info.z_dim} / ${info.w_dim}`], ["number of ws", info.num_ws],
    ["classes", info.c_dim || "unconditional"], ["parameters", info.params.toLocaleString("en-US")],
    ["noise inputs", info.noise_inputs], ["device", info.device], ["source", info.source],
  ];
  if (info.run) rows.splice(8, 0, ["run", info.run]);
  if (info.input_transform) rows.splice(7, 0, ["input transform", "translate / rotate"]);
  $("net-table").replaceChildren(...rows.map(([k, v]) => {
    const tr = document.createElement("tr");
    for (const text of [k, v]) { const td = document.createElement("td"); td.textContent = text; tr.append(td); }
    return tr;
  }));
  $("net-summary").textContent = `${info.kind} · ${info.resolution}×${info.resolution} · ${info.source} · ${info.device}`;
  const cutoff = $("cutoff");
  cutoff.replaceChildren(new Option("all styles", ""));
  for (let i = 1; i <= info.num_ws; i++) cutoff.append(new Option(`first ${i}`, String(i)));
  $("mix-from").max = $("mix-to").max = info.num_ws - 1;
  $("class-row").hidden = info.c_dim === 0;
  if (info.c_dim > 0) {
    $("class").replaceChildren(...Array.from({ length: info.c_dim }, (_, i) => new Option(String(i), String(i))));
    if (!state.class) state.class = defaults.conditional_class;
  } else {
    state.class = "";
  }
  // StyleGAN3: the transform controls; the noise controls off, with the one line that says why
  if (!isSG3() && playing === "eq") stop();
  $("transform-card").hidden = !isSG3();
  $("noise-note").hidden = hasNoise();
  $("noise-card").classList.toggle("off", !hasNoise());
  for (const el of $("noise-card").querySelectorAll("input")) el.disabled = !hasNoise();
  if (!hasNoise()) state.var = "";
  $("snapshot-row").hidden = info.snapshots.length === 0;
  $("snapshot").replaceChildren(...info.snapshots.map((s) => new Option(s, s)));
  if (info.snapshot) $("snapshot").value = info.snapshot;
}

async function switchSnapshot(name) {
  const r = await fetch(`api/network?snapshot=${encodeURIComponent(name)}`, { method: "POST" });
  if (!r.ok) { showMessage(await errorText(r)); return; }
  fillNetwork(await r.json());
  await loadDirections();  // SeFa of the new network
  syncControls();
  refresh();
}

// ------------------------------------------------------------------ uploads, projection

async function uploadW(file) {
  if (!file) return;
  const r = await fetch("api/w", { method: "POST", body: file });
  if (!r.ok) { showMessage(`${file.name}: ${await errorText(r)}`); return; }
  set({ w: (await r.json()).w });
}

let job = null;

function bindProjection() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    startProjection(e.dataTransfer.files[0]);
  });
  $("proj-file").addEventListener("change", (e) => startProjection(e.target.files[0]));
  $("proj-cancel").addEventListener("click", async () => {
    if (job) await fetch(`api/project/${job}/cancel`, { method: "POST" });
  });
}

async function startProjection(file) {
  if (!file) return;
  const q = new URLSearchParams({ steps: $("proj-steps").value, w_plus: $("proj-wplus").checked ? "1" : "0" });
  if (state.class) q.set("class", state.class);
  $("proj-status").textContent = `uploading ${file.name}…`;
  const r = await fetch(`api/project?${q}`, { method: "POST", body: file });
  if (!r.ok) {
    const msg = `${file.name}: ${await errorText(r)}`;
    showMessage(msg);
    $("proj-status").textContent = msg;
    return;
  }
  job = (await r.json()).job;
  $("proj-cancel").disabled = false;
  $("proj-figure").hidden = false;
  pollProjection(job);
}

async function pollProjection(id) {
  let lastStep = -1;
  while (job === id) {
    const r = await fetch(`api/project/${id}`);
    if (!r.ok) { showMessage(await errorText(r)); break; }
    const s = await r.json();
    $("proj-progress").max = s.steps;
    $("proj-progress").value = s.step;
    const dist = s.dist === null ? "" : ` · distance ${s.dist.toPrecision(4)}`;
    $("proj-status").textContent = `${s.state}: step ${s.step} / ${s.steps}${dist}`;
    $("proj-label").textContent = `projection, step ${s.step}`;
    if (s.step !== lastStep || s.state !== "running") {
      lastStep = s.step;
      await load("projection", `project/${id}/preview`, $("img-proj"));
    }
    if (s.state !== "running") {
      $("proj-cancel").disabled = true;
      if (s.error) showMessage(`projection failed: ${s.error}`);
      if (s.w) set({ w: s.w, psi: UNTRUNCATED, mix_seed: "" });  // explore from the result, as it is
      break;
    }
    await new Promise((res) => setTimeout(res, 250));
  }
}

// ------------------------------------------------------------------ edit

// state.edit is "component:strength" pairs, e.g. "0:1.5,3:-2"; a slider at 0 drops its pair.
function editPairs() {
  const m = new Map();
  for (const part of (state.edit || "").split(",")) {
    const [k, a] = part.split(":");
    if (part && a !== undefined) m.set(Number(k), a);
  }
  return m;
}

function setStrength(k, a) {
  const m = editPairs();
  if (Number(a) === 0) m.delete(k); else m.set(k, a);
  set({ edit: [...m].sort((x, y) => x[0] - y[0]).map(([c, v]) => `${c}:${v}`).join(",") });
}

function currentSet() { return dirSets[state.dirs] || null; }

function buildSliders() {
  const box = $("edit-sliders");
  const d = currentSet();
  const [lo, hi] = defaults.edit_slider_range;
  const n = d ? Math.min(Number(state.edit_n) || 0, d.count, d.values.length) : 0;
  const rows = [];
  for (let k = 0; k < n; k++) {
    const row = document.createElement("div");
    row.className = "row edit-slider";
    const label = document.createElement("label");
    label.htmlFor = `edit-${k}`;
    label.textContent = d.names[k].replace("component ", "c");
    label.title = `${d.names[k]}: ${d.value_name} ${d.values[k].toPrecision(4)}, `
      + `W's std along it ${d.scales[k].toPrecision(4)}`;
    const input = document.createElement("input");
    Object.assign(input, { id: `edit-${k}`, type: "range", min: lo, max: hi, step: "0.1" });
    input.dataset.k = String(k);
    input.addEventListener("input", (e) => setStrength(k, e.target.value));
    const out = document.createElement("output");
    out.id = `edit-${k}-out`;
    row.append(label, input, out);
    rows.push(row);
  }
  box.replaceChildren(...rows);
  syncEdit();
}

function syncEdit() {
  if (!defaults) return;
  const d = currentSet();
  const m = editPairs();
  for (const input of document.querySelectorAll("#edit-sliders input")) {
    const a = m.get(Number(input.dataset.k)) || "0";
    input.value = a;
    $(`${input.id}-out`).textContent = `${Number(a) > 0 ? "+" : ""}${Number(a).toFixed(1)}σ`;
  }
  $("edit-dirs").value = state.dirs;
  $("edit-layers").value = state.edit_layers;
  $("edit-n").value = state.edit_n;
  $("edit-own-layers").textContent = d ? `own: ${d.layers}` : "";
  const info = d ? `${d.count} directions, ${d.samples.toLocaleString("en-US")} W samples; `
    + "sliders in standard deviations of W along each" : "";
  $("edit-info").textContent = d && d.warning ? `${info}. Note: ${d.warning}` : info;
}

function fillDirections(sets) {
  dirSets = Object.fromEntries(sets.map((d) => [d.id, d]));
  $("edit-dirs").replaceChildren(...sets.map((d) => new Option(d.label, d.id)));
}

async function loadDirections() {
  try {
    const r = await getJson("api/directions");
    fillDirections(r.sets);
  } catch (e) {
    showMessage(`directions: ${e.message}`);
    return;
  }
  if (!dirSets[state.dirs]) {  // a link to a set this server no longer has
    if (state.edit) showMessage(`directions ${state.dirs} are gone (sets live as long as the server): edit reset`);
    Object.assign(state, { dirs: defaults.view.dirs, edit: "" });
  }
  buildSliders();
}

async function useNewSet(r, what = "") {
  if (!r.ok) { showMessage(`${what}${await errorText(r)}`); return; }
  const dirs = (await r.json()).dirs;
  await loadDirections();
  set({ dirs, edit: "" });
  buildSliders();
}

let ganspaceJob = null;

async function startGanspace() {
  const q = new URLSearchParams({ method: "ganspace", samples: $("ganspace-samples").value });
  const r = await fetch(`api/directions?${q}`, { method: "POST" });
  if (!r.ok) { showMessage(await errorText(r)); return; }
  ganspaceJob = (await r.json()).job;
  $("ganspace-cancel").disabled = false;
  const id = ganspaceJob;
  while (ganspaceJob === id) {
    const q = await fetch(`api/directions/job/${id}`);
    if (!q.ok) { showMessage(await errorText(q)); break; }
    const s = await q.json();
    $("ganspace-progress").max = s.total;
    $("ganspace-progress").value = s.done;
    const count = (n) => n.toLocaleString("en-US");
    $("ganspace-status").textContent = `GANSpace ${s.state}: ${count(s.done)} / ${count(s.total)} samples`;
    if (s.state !== "running") {
      $("ganspace-cancel").disabled = true;
      if (s.error) showMessage(`GANSpace failed: ${s.error}`);
      if (s.dirs) {
        await loadDirections();
        set({ dirs: s.dirs, edit: "" });
        buildSliders();
      }
      break;
    }
    await new Promise((res) => setTimeout(res, 250));
  }
}

function bindEdit() {
  $("edit-dirs").addEventListener("change", (e) => { set({ dirs: e.target.value, edit: "" }); buildSliders(); });
  $("edit-layers").addEventListener("change", (e) => set({ edit_layers: e.target.value.trim() }));
  $("edit-n").addEventListener("change", (e) => { set({ edit_n: e.target.value }); buildSliders(); });
  $("edit-reset").addEventListener("click", () => set({ edit: "" }));
  $("sefa-compute").addEventListener("click", async () => {
    const q = new URLSearchParams({ method: "sefa", layers: $("sefa-layers").value });
    await useNewSet(await fetch(`api/directions?${q}`, { method: "POST" }));
  });
  $("ganspace-start").addEventListener("click", startGanspace);
  $("ganspace-cancel").addEventListener("click", async () => {
    if (ganspaceJob) await fetch(`api/directions/job/${ganspaceJob}/cancel`, { method: "POST" });
  });
  $("dirs-file").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const q = new URLSearchParams({ name: file.name });
    const r = await fetch(`api/directions/upload?${q}`, { method: "POST", body: file });
    await useNewSet(r, `${file.name}: `);
  });
}

// ------------------------------------------------------------------ animation

function countSeeds(spec) {  // '0-3,7' -> 5 (the server validates; this only paces the loop)
  let n = 0;
  for (const part of spec.split(",")) {
    const m = part.trim().match(/^(\d+)\s*-\s*(\d+)$/);
    if (m) n += Math.max(0, Number(m[2]) - Number(m[1]) + 1);
    else if (part.trim()) n += 1;
  }
  return Math.max(2, n);
}

// The two loops of the main image: through seeds, and (StyleGAN3) the transform of one w. Each
// request names its position t in [0, 1); the server draws that frame. rate: loops per second.
const LOOPS = {
  seeds: { route: "animation", button: "anim-play", t: 0, rate: () => Number(state.speed) / countSeeds(state.anim_seeds) },
  eq: { route: "equivariance", button: "eq-play", t: 0, rate: () => Number(state.eq_speed) },
};

async function play(kind) {
  if (playing) stop();
  const loop = LOOPS[kind];
  playing = kind;
  loop.label = loop.label || $(loop.button).textContent;
  $(loop.button).textContent = "Stop";
  $(loop.button).classList.add("active");
  describe();
  let last = performance.now();
  while (playing === kind) {
    const now = performance.now();
    loop.t = (loop.t + ((now - last) / 1000) * loop.rate()) % 1;
    last = now;
    if (!(await load("loop", loop.route, $("img-main"), { t: loop.t.toFixed(5) }))) {
      if ($("message").hidden === false && playing === kind) stop();
      await new Promise((res) => setTimeout(res, 30));
    }
  }
}

function stop() {
  const loop = LOOPS[playing];
  playing = "";
  if (slots.loop && slots.loop.ctrl) slots.loop.ctrl.abort();  // a frame still coming must not cover the still image
  if (loop) {
    $(loop.button).textContent = loop.label;
    $(loop.button).classList.remove("active");
  }
  refresh();
}

// ------------------------------------------------------------------ start

// The view in the address bar over the defaults: keys the page does not keep are ignored.
function loadState() {
  Object.assign(state, defaults.view);
  for (const [k, v] of new URLSearchParams(location.search)) if (k in defaults.view) state[k] = v;
  $("proj-steps").value = defaults.project_steps;
  $("proj-steps").max = defaults.max_project_steps;
  $("ganspace-samples").value = defaults.ganspace_samples;
  $("ganspace-samples").max = defaults.max_ganspace_samples;
}

async function start() {
  let info;
  try {
    [defaults, info] = await Promise.all([getJson("api/defaults"), getJson("api/network")]);
  } catch (e) {
    showMessage(`cannot reach the server (${e.message})`);
    return;
  }
  loadState();
  bind();
  fillNetwork(info);
  syncControls();
  refresh();
  window.explorer = { state, slots, set, play, stop };  // for tests and the console
  await loadDirections();  // the first call computes SeFa on the server
  syncControls();
}

start();
