// SketchyGAN playground: draw (pointer events), pick a class, Generate = 4 parallel POST /v1/generate with 4 seeds
// (tritonserver batches them together). "more like this" keeps a result's seed for the next Generate.
"use strict";

const RESULTS = 4;
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
const slots = Array.from({length: RESULTS}, () => ({seed: null, kept: false, url: null}));

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
  return [(ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height];
}

canvas.addEventListener("pointerdown", (ev) => {
  ev.preventDefault();
  canvas.setPointerCapture(ev.pointerId);
  current = {width: Number(widthInput.value), points: [canvasPoint(ev)]};
  strokes.push(current);
  redraw();
});
canvas.addEventListener("pointermove", (ev) => {
  if (!current) return;
  const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [ev];
  for (const e of (events.length ? events : [ev])) current.points.push(canvasPoint(e));
  redraw();
});
for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => { current = null; });
}

function undo() {
  strokes.pop();
  redraw();
}
document.getElementById("undo").addEventListener("click", undo);
document.addEventListener("keydown", (ev) => {
  if ((ev.ctrlKey || ev.metaKey) && ev.key === "z") { ev.preventDefault(); undo(); }
});
document.getElementById("clear").addEventListener("click", () => {
  strokes = [];
  background = null;
  redraw();
});

document.getElementById("upload").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  ev.target.value = "";
  if (!file) return;
  try {
    const bitmap = await createImageBitmap(file);
    // fit inside the square canvas on white, keeping the aspect ratio (as the server does)
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
    showError("");
  } catch (e) {
    showError(`${file.name} is not an image this browser can read (PNG or JPEG expected)`);
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
    statusText.textContent = `model ready · ${body.classes.length} classes · ${body.resolution}×${body.resolution} px`;
  } catch (e) {
    showError(`cannot load the classes: ${e.message}`);
    statusText.textContent = "model unavailable";
  }
}

function sketchBlob() {
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

async function generateOne(blob, cls, style, seed) {
  const styleParam = style ? `&style=${encodeURIComponent(style)}` : "";
  const url = `/v1/generate?class=${encodeURIComponent(cls)}${styleParam}&seed=${seed}`;
  const response = await fetch(url, {method: "POST", body: blob, headers: {"content-type": "image/png"}});
  if (!response.ok) throw new Error(await errorText(response));
  return URL.createObjectURL(await response.blob());
}

async function generate() {
  generateButton.disabled = true;
  showError("");
  try {
    const blob = await sketchBlob();
    const cls = classSelect.value;
    for (const s of slots) if (!s.kept) s.seed = randomSeed();
    const style = styleSelect.value;
    const answers = await Promise.allSettled(slots.map((s) => generateOne(blob, cls, style, s.seed)));
    const failed = answers.find((a) => a.status === "rejected");
    answers.forEach((a, i) => {
      if (a.status !== "fulfilled") return;
      if (slots[i].url) URL.revokeObjectURL(slots[i].url);
      slots[i].url = a.value;
    });
    if (failed) showError(failed.reason.message);
    render();
  } finally {
    generateButton.disabled = false;
  }
}
generateButton.addEventListener("click", generate);

function render() {
  resultsBox.replaceChildren(...slots.filter((s) => s.url).map((s) => {
    const fig = document.createElement("figure");
    fig.className = s.kept ? "kept" : "";
    const img = document.createElement("img");
    img.src = s.url;
    img.alt = `generated photo, seed ${s.seed}`;
    img.dataset.testid = "result";
    const caption = document.createElement("figcaption");
    const label = document.createElement("span");
    label.textContent = `seed ${s.seed}`;
    const keep = document.createElement("button");
    keep.type = "button";
    keep.textContent = s.kept ? "kept ✓" : "more like this";
    keep.title = "keep this seed: the next Generate redraws it from your updated sketch and re-rolls the others";
    keep.addEventListener("click", () => { s.kept = !s.kept; render(); });
    caption.append(label, keep);
    fig.append(img, caption);
    return fig;
  }));
}

redraw();
loadClasses();
