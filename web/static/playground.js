// SketchyGAN playground: draw (pointer events), pick a class, Generate = one POST /v1/variations with the 4 seeds
// (one batched model call). "more like this" keeps a result's seed for the next Generate. Live: while "live" is on,
// the 4 results follow the drawing without Generate (after each stroke, and every LIVE_DEBOUNCE_MS during a long
// one), one request per update for all 4 seeds, at most one in flight, answers for an older drawing dropped; when
// the pen lifts, a mid-stroke request still in flight is aborted and the final drawing sent at once.
"use strict";

const RESULTS = 4;
const LIVE_DEBOUNCE_MS = 80;  // during a stroke: at most one live update per this many ms of drawing
// requests per live update: 1 (all seeds in one call), or 4 (one call per result, what the page sent before
// 2026-12-07): `?live_requests=4` is for the benchmark that measures one against the other (loadtest/live.py)
const LIVE_REQUESTS = ((n) => ([1, 2, 4].includes(n) ? n : 1))(
  Number(new URLSearchParams(location.search).get("live_requests")));
const canvas = document.getElementById("sketch");
const ctx = canvas.getContext("2d");
const widthInput = document.getElementById("width");
const classSelect = document.getElementById("class");
const styleSelect = document.getElementById("style");
const styleLabel = document.getElementById("style-label");
const generateButton = document.getElementById("generate");
const errorBox = document.getElementById("error");
const resultsBox = document.getElementById("results");
const statusText = document.getElementById("status");

let strokes = [];          // [{width, points: [[x, y], ...]}], redrawn on undo
let background = null;     // an uploaded sketch, drawn under the strokes
let current = null;        // the stroke being drawn
const liveBox = document.getElementById("live");
// shown: the drawing version its image was made from; confidence: the server's P(the image shows the class) (null
// when the server has no scorer)
const slots = Array.from({length: RESULTS}, () => ({seed: null, kept: false, url: null, shown: 0, confidence: null}));
// the live requests: each sends the drawing for its slots' seeds; busy: a request in flight (cancelled by
// `controller`); again: a newer drawing waits for it
const groups = Array.from({length: LIVE_REQUESTS}, (_, g) => ({
  slots: slots.filter((_, i) => i % LIVE_REQUESTS === g), busy: false, again: false, controller: null}));
const orderBox = document.getElementById("order");
let version = 0;             // bumped by every change of the drawing, class or style
const upAt = new Map();      // drawing version at a pointer-up -> when it happened (performance.now())
window.liveLatencies = [];   // ms from a pointer-up to all 4 results showing that drawing (the live benchmark)
// what the live updates stand at, for tests and the benchmark to print when something never arrives
window.liveState = () => ({version, slots: slots.map(({shown, seed}) => ({shown, seed})),
                           requests: groups.map(({busy, again}) => ({busy, again})),
                           pending: [...upAt.keys()], logged: window.liveLatencies.length});

// the side of the images the model answers (twice the sketch's when it upsamples in its graph)
function imageSide(body) {
  return body.image_resolution || body.resolution;
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

function randomSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0] >>> 1;  // 0 .. 2^31-1
}

// ------------------------------------------------------------------ drawing

function redraw() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (background) ctx.drawImage(background, 0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#000";
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  for (const s of strokes) drawStroke(s);
}

function drawStroke(s) {
  ctx.lineWidth = s.width;
  ctx.beginPath();
  const [x0, y0] = s.points[0];
  ctx.moveTo(x0, y0);
  if (s.points.length === 1) ctx.lineTo(x0 + 0.01, y0);  // a dot
  for (const [x, y] of s.points.slice(1)) ctx.lineTo(x, y);
  ctx.stroke();
}

function canvasPoint(ev) {
  const r = canvas.getBoundingClientRect();
  // to 1/100 px: what a shared link carries exactly, so that a replayed drawing is the same pixels
  const at = (v) => Math.round(v * 100) / 100;
  return [at((ev.clientX - r.left) * canvas.width / r.width), at((ev.clientY - r.top) * canvas.height / r.height)];
}

canvas.addEventListener("pointerdown", (ev) => {
  ev.preventDefault();
  canvas.setPointerCapture(ev.pointerId);
  current = {width: Number(widthInput.value), points: [canvasPoint(ev)]};
  strokes.push(current);
  redraw();
  changed(LIVE_DEBOUNCE_MS);
});
canvas.addEventListener("pointermove", (ev) => {
  if (!current) return;
  const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [ev];
  for (const e of (events.length ? events : [ev])) current.points.push(canvasPoint(e));
  redraw();
  changed(LIVE_DEBOUNCE_MS);
});
for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => {
    if (!current) return;
    current = null;
    changed(0);
    if (liveBox.checked) upAt.set(version, performance.now());
  });
}

function undo() {
  strokes.pop();
  redraw();
  changed(0);
}
document.getElementById("undo").addEventListener("click", undo);
document.addEventListener("keydown", (ev) => {
  if ((ev.ctrlKey || ev.metaKey) && ev.key === "z") { ev.preventDefault(); undo(); }
});
document.getElementById("clear").addEventListener("click", () => {
  strokes = [];
  background = null;
  redraw();
  version++;  // answers still on their way are for the old drawing: dropped
});

// an image under the strokes: fitted inside the square canvas on white, keeping the aspect ratio (as the server does)
function setBackground(bitmap) {
  const off = document.createElement("canvas");
  off.width = canvas.width;
  off.height = canvas.height;
  const o = off.getContext("2d");
  o.fillStyle = "#fff";
  o.fillRect(0, 0, off.width, off.height);
  const k = Math.min(off.width / bitmap.width, off.height / bitmap.height);
  const w = bitmap.width * k, h = bitmap.height * k;
  o.drawImage(bitmap, (off.width - w) / 2, (off.height - h) / 2, w, h);
  background = off;
  strokes = [];
  redraw();
  changed(0);
}

document.getElementById("upload").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  ev.target.value = "";
  if (!file) return;
  try {
    setBackground(await createImageBitmap(file));
    showError("");
  } catch (e) {
    showError(`${file.name} is not an image this browser can read (PNG or JPEG expected)`);
  }
});

// a photo becomes the sketch the model expects (POST /v1/sketch: the training data's edge extractor), to draw over
document.getElementById("upload-photo").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  ev.target.value = "";
  if (!file) return;
  try {
    const response = await post("/v1/sketch", file);
    setBackground(await createImageBitmap(await response.blob()));
    showError("");
  } catch (e) {
    showError(`${file.name}: ${e.message}`);
  }
});

// ------------------------------------------------------------------ the gateway

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return `${response.status}: ${body.error}`;
  } catch (e) { /* not JSON */ }
  return `${response.status}: ${response.statusText || "request failed"}`;
}

async function loadClasses() {
  try {
    const response = await fetch("/v1/classes");
    if (!response.ok) throw new Error(await errorText(response));
    const body = await response.json();
    classSelect.replaceChildren(...body.classes.map((name, i) => new Option(name, String(i))));
    const styles = body.styles || [];
    styleSelect.replaceChildren(...styles.map((name) => new Option(name, name, name === body.default_style)));
    styleLabel.hidden = styles.length === 0;  // a one-style model: nothing to choose
    statusText.textContent = `model ready · ${body.classes.length} classes · ${imageSide(body)}×${imageSide(body)} px`;
  } catch (e) {
    showError(`cannot load the classes: ${e.message}`);
    statusText.textContent = "model unavailable";
  }
}

// the canvas as a PNG Blob, encoded now: Chrome's toBlob encodes in an idle period and, when none comes (the page
// busy with pointer events and answers), waits up to 1 s for one — measured: every such pointer-up took 1.1 s
function sketchBlob() {
  return pngBlob(canvas.toDataURL("image/png").split(",")[1]);
}

// a base64-encoded PNG as a Blob
function pngBlob(base64) {
  const data = atob(base64);
  const bytes = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i);
  return new Blob([bytes], {type: "image/png"});
}

// POST an image to the gateway; the answer, or an Error with the gateway's own message
async function post(path, body, signal = undefined) {
  const response = await fetch(path, {method: "POST", body, signal,
                                      headers: {"content-type": body.type || "image/png"}});
  if (!response.ok) throw new Error(await errorText(response));
  return response;
}

function styleParam(style) {
  return style ? `&style=${encodeURIComponent(style)}` : "";  // none: the model's default style
}

// the results of one drawing for several seeds, in one call: per seed its image (an object URL) and the server's
// class confidence (null when it has no scorer)
async function generateSeeds(blob, cls, style, seeds, signal = undefined) {
  const response = await post(`/v1/variations?class=${encodeURIComponent(cls)}${styleParam(style)}`
                              + `&seeds=${seeds.join(",")}`, blob, signal);
  const body = await response.json();
  return body.images.map(({png, receipt}) => ({url: URL.createObjectURL(pngBlob(png)),
                                               confidence: receipt.class_confidence}));
}

function show(s, answer, v) {
  if (s.url) URL.revokeObjectURL(s.url);
  s.url = answer.url;
  s.confidence = answer.confidence;
  s.shown = Math.max(s.shown, v);
}

async function generate(reroll = true) {
  generateButton.disabled = true;
  showError("");
  try {
    const v = version;
    const blob = sketchBlob();
    const cls = classSelect.value;
    for (const s of slots) if (reroll && !s.kept) s.seed = randomSeed();
    const style = styleSelect.value;
    const answers = await generateSeeds(blob, cls, style, slots.map((s) => s.seed));
    answers.forEach((a, i) => show(slots[i], a, v));
    render();
  } catch (e) {
    showError(e.message);
  } finally {
    generateButton.disabled = false;
  }
}
generateButton.addEventListener("click", () => generate());

// ------------------------------------------------------------------ live drawing

let liveTimer = null;
let liveDueAt = 0;
// the drawing changed: a live update now (delay 0) or within `delay` ms (a long stroke: one update per interval)
function changed(delay) {
  version++;
  if (!liveBox.checked || strokes.length + (background ? 1 : 0) === 0) return;
  const due = performance.now() + delay;
  if (liveTimer !== null && (delay > 0 || liveDueAt <= due)) return;  // one is already due no later
  clearTimeout(liveTimer);
  liveDueAt = due;
  liveTimer = setTimeout(() => { liveTimer = null; liveUpdate(delay === 0); }, delay);
}

// final: the pen lifted (or undo, class, style): a mid-stroke update still in flight is cancelled and this drawing
// sent at once; during a stroke, a busy request sends the newest drawing when its answer returns
function liveUpdate(final) {
  const v = version;
  const blob = sketchBlob();  // this drawing, read now
  for (const s of slots) if (s.seed === null) s.seed = randomSeed();
  for (const g of groups) liveRequest(g, blob, v, final);
}

// at most one request in flight per group of results: a busy one either queues the newest drawing (again) or, for a
// final drawing, aborts its request (the gateway then cancels the server call, so a queued one is never computed)
function liveRequest(g, blob, v, final = false) {
  if (g.busy) {
    if (!final) { g.again = true; return; }
    g.controller.abort();
  }
  const controller = new AbortController();
  Object.assign(g, {busy: true, again: false, controller});
  runRequest(g, blob, v, controller);
}

async function runRequest(g, blob, v, controller) {
  try {
    const answers = await generateSeeds(blob, classSelect.value, styleSelect.value, g.slots.map((s) => s.seed),
                                        controller.signal);
    answers.forEach((answer, i) => {
      const s = g.slots[i];
      if (v > s.shown) show(s, answer, v);  // a later drawing may have been shown already: an older answer is dropped
      else URL.revokeObjectURL(answer.url);
    });
    render();
    logLatency();
    showError("");
  } catch (e) {
    if (e.name !== "AbortError") showError(e.message);
  } finally {
    if (g.controller === controller) {  // not replaced by a final drawing meanwhile
      g.busy = false;
      if (g.again && v < version) liveRequest(g, sketchBlob(), version);
      g.again = false;
    }
  }
}

function logLatency() {
  const done = Math.min(...slots.map((s) => s.shown));
  for (const [v, t] of upAt) {
    if (v <= done) {
      window.liveLatencies.push(performance.now() - t);
      upAt.delete(v);
    }
  }
}
classSelect.addEventListener("change", () => changed(0));
orderBox.addEventListener("change", render);
styleSelect.addEventListener("change", () => changed(0));

// the results in slot order, or the most confident first ("order by score"; unscored ones last)
function render() {
  const shown = slots.filter((s) => s.url);
  if (orderBox.checked) shown.sort((a, b) => (b.confidence ?? -1) - (a.confidence ?? -1));
  resultsBox.replaceChildren(...shown.map((s) => {
    const fig = document.createElement("figure");
    fig.className = s.kept ? "kept" : "";
    const img = document.createElement("img");
    img.src = s.url;
    img.alt = `generated photo, seed ${s.seed}`;
    img.dataset.testid = "result";
    const caption = document.createElement("figcaption");
    const label = document.createElement("span");
    label.textContent = `seed ${s.seed}`;
    label.dataset.testid = "seed";
    caption.append(label);
    if (s.confidence !== null) {  // a badge on the image's corner
      const score = document.createElement("span");
      score.className = "confidence";
      score.dataset.testid = "confidence";
      score.textContent = `${Math.round(100 * s.confidence)} %`;
      score.title = `how sure the server's classifier is that this shows ${classSelect.value}`;
      fig.append(score);
    }
    const keep = document.createElement("button");
    keep.type = "button";
    keep.textContent = s.kept ? "kept ✓" : "more like this";
    keep.title = "keep this seed: the next Generate redraws it from your updated sketch and re-rolls the others";
    keep.addEventListener("click", () => { s.kept = !s.kept; render(); });
    caption.append(keep);
    fig.append(img, caption);
    return fig;
  }));
}

// "what could this be?": the sketch in every class at once (POST /v1/grid: rows = classes, columns = seeds)
const gridButton = document.getElementById("grid-button");
const gridBox = document.getElementById("grid");
async function showGrid() {
  gridButton.disabled = true;
  showError("");
  try {
    const response = await post(`/v1/grid?seeds=4${styleParam(styleSelect.value)}`, sketchBlob());
    const classes = JSON.parse(decodeURIComponent(response.headers.get("x-grid-classes")));
    // each row's mean class confidence, when the server scores: the likeliest classes stand out
    const scores = response.headers.get("x-grid-confidence");
    const means = scores ? JSON.parse(scores).map((row) => row.reduce((a, b) => a + b, 0) / row.length) : null;
    const best = means ? means.indexOf(Math.max(...means)) : -1;
    const img = document.createElement("img");
    img.src = URL.createObjectURL(await response.blob());
    img.alt = `the sketch in every class (rows: ${classes.join(", ")}), four seeds each`;
    img.dataset.testid = "grid-image";
    const cell = 72;  // px per image on the page: each class's label sits beside its row
    img.style.width = `${4 * cell}px`;
    img.style.height = `${classes.length * cell}px`;
    const labels = document.createElement("ol");
    labels.className = "grid-labels";
    labels.append(...classes.map((c, i) => {
      const li = document.createElement("li");
      li.textContent = means ? `${c} · ${Math.round(100 * means[i])} %` : c;
      if (i === best) li.className = "best";
      li.style.height = li.style.lineHeight = `${cell}px`;
      return li;
    }));
    const old = gridBox.querySelector("img");
    if (old) URL.revokeObjectURL(old.src);
    gridBox.replaceChildren(labels, img);
    gridBox.hidden = false;
  } catch (e) {
    showError(e.message);
  } finally {
    gridButton.disabled = false;
  }
}
gridButton.addEventListener("click", showGrid);

// ------------------------------------------------------------------ keep and share

// one PNG: the sketch, then the results in their order
document.getElementById("download").addEventListener("click", async () => {
  const shown = [...resultsBox.querySelectorAll("img")];  // the results as they are on the page
  const side = canvas.width;
  const out = document.createElement("canvas");
  out.width = side * (1 + shown.length);
  out.height = side;
  const o = out.getContext("2d");
  o.drawImage(canvas, 0, 0);
  for (const [i, img] of shown.entries()) {
    await img.decode();
    o.drawImage(img, side * (i + 1), 0, side, side);
  }
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await new Promise((resolve) => out.toBlob(resolve, "image/png")));
  a.download = `sketchygan-${classSelect.selectedOptions[0]?.text || "sketch"}.png`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});

// a link that replays the drawing: strokes, class, style and seeds in the URL's fragment (never sent to the server;
// nothing is stored). An uploaded sketch or photo under the strokes is not part of it.
function shareState() {
  return {v: 1, c: classSelect.value, st: styleSelect.value || null, s: slots.map((x) => x.seed),
          k: strokes.map((x) => [x.width, x.points])};
}
document.getElementById("share").addEventListener("click", async () => {
  const json = JSON.stringify(shareState());
  const code = btoa(String.fromCharCode(...new TextEncoder().encode(json)))
    .replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
  history.replaceState(null, "", `#d=${code}`);
  const link = document.getElementById("share-link");
  link.value = location.href;
  link.hidden = false;
  link.select();
  try { await navigator.clipboard.writeText(location.href); } catch (e) { /* the link is shown to copy by hand */ }
});

async function replayFromLink() {
  const m = location.hash.match(/^#d=([A-Za-z0-9_-]+)$/);
  if (!m) return;
  try {
    const b64 = m[1].replaceAll("-", "+").replaceAll("_", "/");
    const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
    const state = JSON.parse(new TextDecoder().decode(bytes));
    if (state.v !== 1 || !Array.isArray(state.k) || !Array.isArray(state.s)) throw new Error("unknown link format");
    strokes = state.k.map(([width, points]) => ({width: Number(width), points}));
    background = null;
    redraw();
    if ([...classSelect.options].some((o) => o.value === state.c)) classSelect.value = state.c;
    if (state.st && [...styleSelect.options].some((o) => o.value === state.st)) styleSelect.value = state.st;
    state.s.slice(0, RESULTS).forEach((seed, i) => { slots[i].seed = Number.isInteger(seed) ? seed : randomSeed(); });
    version++;
    await generate(false);  // the link's seeds, not new ones
  } catch (e) {
    showError(`this link's drawing could not be read: ${e.message}`);
  }
}

redraw();
loadClasses().then(replayFromLink);
