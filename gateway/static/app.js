// The recog page: draw a digit, upload images or a zip, follow batches. Talks only to /v1 on
// this host, so it works offline.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const FINAL = new Set(["done", "failed", "cancelled"]);
const BATCH_FINAL = new Set(["done", "partial", "failed", "cancelled"]);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// ---------- the API key ----------

// Asked for once and kept in this browser (localStorage), sent as a Bearer token with every call.
const KEY_ITEM = "recog-api-key";
const storedKey = () => localStorage.getItem(KEY_ITEM);

function showKey(message = "") {
  const key = storedKey();
  $("#key-form").hidden = Boolean(key) && !message;
  $("#key-held").hidden = !key;
  $("#key-name").textContent = key ? `${key.slice(0, 22)}…` : "";
  const note = $("#key-message");
  note.textContent = message;
  note.hidden = !message;
  if (!key || message) $("#api-key").focus();
}

function setUpKey() {
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("#api-key").value.trim();
    if (!key) return;
    localStorage.setItem(KEY_ITEM, key);
    $("#api-key").value = "";
    showKey();
    listRecentBatches();
  });
  $("#forget-key").addEventListener("click", () => {
    localStorage.removeItem(KEY_ITEM);
    showKey("Key forgotten. Enter an API key to use the service.");
  });
  showKey(storedKey() ? "" : "Enter your API key: make up printed one (it is also in .recog/api-key).");
}

function withKey(options = {}) {
  const key = storedKey();
  if (!key) return options;
  return { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${key}` } };
}

// ---------- the API ----------

// Like `recog submit`: a 429, 503 or 409 with Retry-After (waiting as long as Retry-After says, else with
// backoff) and a server that cannot be reached are tried again for up to ten minutes a request,
// saying so meanwhile. Every upload carries an Idempotency-Key, so one sent again after a lost
// answer makes no second job.
const RETRY_FOR_MS = 10 * 60 * 1000;
const MAX_DELAY_MS = 30 * 1000;
const RETRY_LATER = new Set([409, 429, 503]);
const waiting = new Map(); // request number -> why it waits; the line shows while any waits
let requests = 0;

function waitingFor(request, reason) {
  if (reason) waiting.set(request, reason);
  else waiting.delete(request);
  const line = $("#service-status");
  const reasons = [...new Set(waiting.values())];
  line.textContent = reasons.length ? `Waiting for the service: ${reasons.join("; ")}` : "";
  line.hidden = !reasons.length;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function api(url, options = {}) {
  const request = ++requests;
  try {
    return await tryUntilDeadline(request, url, options);
  } finally {
    waitingFor(request, null);
  }
}

async function tryUntilDeadline(request, url, options) {
  const deadline = Date.now() + RETRY_FOR_MS;
  let delay = 1000;
  for (;;) {
    let response = null;
    let reason = "the server cannot be reached";
    let pause = delay;
    try {
      response = await fetch(url, withKey(options));
    } catch (err) {
      if (Date.now() + pause > deadline) {
        throw new Error(`The server could not be reached for ten minutes (${err.message}). Is recog running?`);
      }
    }
    // A 409 without Retry-After (a closed batch) is for good.
    const final409 = response && response.status === 409 && !response.headers.get("Retry-After");
    if (response && (!RETRY_LATER.has(response.status) || final409)) return read(response);
    if (response) {
      const body = await response.json().catch(() => null);
      reason = body && body.error ? body.error.message : `the server answered ${response.status}`;
      const after = Number(response.headers.get("Retry-After"));
      if (after > 0) pause = Math.min(after * 1000, MAX_DELAY_MS);
      if (Date.now() + pause > deadline) {
        const error = new Error(reason);
        error.status = response.status;
        throw error;
      }
    }
    waitingFor(request, reason);
    await sleep(pause);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  }
}

async function read(response) {
  const type = response.headers.get("Content-Type") || "";
  const body = type.includes("application/json") ? await response.json() : null;
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `The server answered ${response.status}.`;
    if (response.status === 401) showKey(`The service refused the key: ${message}`);
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

// crypto.randomUUID exists only in secure contexts; a page served over plain HTTP from another
// host than localhost has getRandomValues alone.
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function upload(url, form) {
  return api(url, { method: "POST", body: form, headers: { "Idempotency-Key": newKey() } });
}

function submitImage(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  return upload("/v1/jobs?wait=10", form);
}

// Follows a job until it is done or failed, calling show(job) at every change.
async function follow(job, show) {
  show(job);
  while (!FINAL.has(job.status)) {
    job = await api(`/v1/jobs/${job.id}?wait=10`);
    show(job);
  }
  return job;
}

// ---------- answers ----------

function percent(p) {
  return `${(100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1)}%`;
}

function bars(probabilities, label) {
  const list = el("ol", { class: "bars", "aria-label": "Probability of each digit" });
  probabilities.forEach((p, digit) => {
    const best = String(digit) === label;
    const fill = el("span", { class: "bar-fill" });
    fill.style.width = `${Math.max(0.5, 100 * p)}%`;
    list.append(
      el(
        "li",
        { class: best ? "bar best" : "bar", "data-digit": String(digit) },
        el("span", { class: "bar-label", text: String(digit) }),
        el("span", { class: "bar-track" }, fill),
        el("span", { class: "bar-value", text: percent(p) }),
      ),
    );
  });
  return list;
}

// The answer to one job, in words: the digit, no digit, or what went wrong.
function answerOf(job, compact = false) {
  if (job.status === "failed") {
    return el("p", { class: "error", text: job.error || "Recognition failed." });
  }
  if (job.status === "cancelled") {
    return el("p", { class: "hint", text: "Cancelled before it was recognised." });
  }
  if (job.status !== "done") {
    return el("p", { class: "hint", text: job.status === "running" ? "Recognising…" : "Waiting in the queue…" });
  }
  if (job.label === null) {
    return el(
      "div",
      { class: "result no-digit" },
      el("p", { class: "digit none", text: "No digit" }),
      el("p", { class: "hint", text: job.reason ? `(${job.reason})` : "" }),
    );
  }
  const result = el(
    "div",
    { class: "result" },
    el("p", { class: "digit", "aria-label": `Recognised as ${job.label}`, text: job.label }),
    el("p", { class: "confidence", text: `${percent(job.confidence)} sure${job.cached ? " (from cache)" : ""}` }),
  );
  if (!compact) result.append(bars(job.probabilities, job.label));
  return result;
}

// ---------- draw ----------

function setUpDrawing() {
  const canvas = $("#canvas");
  const ctx = canvas.getContext("2d");
  const answer = $("#answer");
  let drawing = false;
  let inked = false;

  function clear() {
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    inked = false;
  }

  function point(event) {
    const box = canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * canvas.width) / box.width,
      ((event.clientY - box.top) * canvas.height) / box.height,
    ];
  }

  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    drawing = true;
    const [x, y] = point(event);
    ctx.lineWidth = canvas.width / 14;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#111111";
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x, y);
    ctx.stroke();
    inked = true;
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const [x, y] = point(event);
    ctx.lineTo(x, y);
    ctx.stroke();
  });
  for (const type of ["pointerup", "pointercancel", "pointerleave"]) {
    canvas.addEventListener(type, () => {
      drawing = false;
    });
  }

  $("#clear").addEventListener("click", () => {
    clear();
    answer.replaceChildren(el("p", { class: "hint", text: "Cleared. Draw a digit, then press Predict." }));
  });

  $("#predict").addEventListener("click", async () => {
    if (!inked) {
      answer.replaceChildren(el("p", { class: "error", text: "Draw a digit first, then press Predict." }));
      return;
    }
    const button = $("#predict");
    button.disabled = true;
    answer.replaceChildren(el("p", { class: "hint", text: "Recognising…" }));
    try {
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
      const job = await submitImage(blob, "drawing.png");
      await follow(job, (current) => answer.replaceChildren(answerOf(current)));
    } catch (err) {
      answer.replaceChildren(el("p", { class: "error", text: err.message }));
    } finally {
      button.disabled = false;
    }
  });

  clear();
}

// ---------- upload ----------

function isZip(file) {
  return /\.zip$/i.test(file.name) || file.type === "application/zip" || file.type === "application/x-zip-compressed";
}

async function uploadImage(file) {
  const status = el("span", { class: "status queued", text: "uploading" });
  const answer = el("div", { class: "row-answer" });
  const thumb = el("img", { class: "thumb", alt: `thumbnail of ${file.name}`, src: URL.createObjectURL(file) });
  const row = el(
    "li",
    { class: "upload" },
    thumb,
    el("div", { class: "row-main" }, el("p", { class: "file-name", text: file.name }), answer),
    status,
  );
  $("#uploads").prepend(row);
  const show = (job) => {
    status.textContent = job.status;
    status.className = `status ${job.status}`;
    answer.replaceChildren(answerOf(job, true));
  };
  try {
    await follow(await submitImage(file, file.name), show);
  } catch (err) {
    status.textContent = "rejected";
    status.className = "status failed";
    answer.replaceChildren(el("p", { class: "error", text: err.message }));
  }
}

async function uploadBatch(form, name) {
  const row = el(
    "li",
    { class: "upload" },
    el("div", { class: "row-main" }, el("p", { class: "file-name", text: name }), el("p", { class: "hint", text: "uploading…" })),
  );
  $("#uploads").prepend(row);
  try {
    const accepted = await upload("/v1/batches", form);
    row.remove();
    openBatch(accepted.id, accepted);
    listRecentBatches();
  } catch (err) {
    row.replaceChildren(
      el("div", { class: "row-main" }, el("p", { class: "file-name", text: name }), el("p", { class: "error", text: err.message })),
      el("span", { class: "status failed", text: "rejected" }),
    );
  }
}

function handleFiles(files) {
  const zips = files.filter(isZip);
  const pictures = files.filter((file) => !isZip(file));
  for (const zip of zips) {
    const form = new FormData();
    form.append("archive", zip, zip.name);
    form.append("name", zip.name);
    uploadBatch(form, zip.name);
  }
  if (pictures.length > 1 && $("#as-batch").checked) {
    const form = new FormData();
    for (const file of pictures) form.append("files", file, file.name);
    form.append("name", `${pictures.length} images`);
    uploadBatch(form, `${pictures.length} images`);
    return;
  }
  pictures.forEach(uploadImage);
}

function setUpUpload() {
  const input = $("#files");
  const zone = $("#dropzone");
  input.addEventListener("change", () => {
    handleFiles([...input.files]);
    input.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    handleFiles([...event.dataTransfer.files]);
  });
}

// ---------- batches ----------

const openBatches = new Map();

function batchCard(id) {
  const fill = el("div", { class: "progress-fill" });
  const bar = el(
    "div",
    { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" },
    fill,
  );
  const csv = el("a", { href: `/v1/batches/${id}/results?format=csv`, download: `batch-${id}.csv`, class: "csv", text: "Download CSV" });
  const json = el("a", { href: `/v1/batches/${id}/results?format=json`, download: `batch-${id}.json`, class: "json", text: "JSON" });
  for (const link of [csv, json]) link.addEventListener("click", (event) => download(event, link));
  const card = el(
    "article",
    { class: "batch", "data-batch-id": id },
    el("h3", {}, el("span", { class: "batch-name", text: "batch" }), " ", el("span", { class: "batch-state status queued", text: "queued" })),
    el("p", { class: "batch-id", text: id }),
    bar,
    el("p", { class: "counts", text: "" }),
    el("p", { class: "downloads" }, csv, " · ", json),
    el("div", { class: "refused" }),
  );
  const button = el("button", { type: "button", class: "cancel-batch", text: "Cancel batch" });
  const cancel = el("span", {}, " · ", button);
  button.addEventListener("click", () => cancelBatch(id, view));
  $(".downloads", card).append(cancel);
  const view = { card, fill, bar, cancel, button };
  return view;
}

// Queued images are skipped, those in a model call finish; the card follows it to "cancelled".
async function cancelBatch(id, view) {
  view.button.disabled = true;
  try {
    showBatch(view, await api(`/v1/batches/${id}/cancel`, { method: "POST" }));
  } catch (err) {
    view.button.disabled = false;
    $("#batch-error").textContent = err.message;
    $("#batch-error").hidden = false;
  }
}

// A plain link would send no key: fetch the file with it, then save what came.
async function download(event, link) {
  event.preventDefault();
  const response = await fetch(link.href, withKey());
  if (!response.ok) {
    await read(response).catch((err) => {
      $("#batch-error").textContent = err.message;
      $("#batch-error").hidden = false;
    });
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const save = el("a", { href: url, download: link.getAttribute("download") });
  document.body.append(save);
  save.click();
  save.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function listRecentBatches() {
  const list = $("#recent-batches");
  if (!storedKey()) return;
  try {
    const page = await api("/v1/batches?limit=10");
    const items = page.batches.map((batch) => {
      const open = el("button", { type: "button", class: "link-button", text: batch.name || batch.id });
      open.addEventListener("click", () => openBatch(batch.id));
      const when = new Date(batch.created_at).toLocaleString();
      return el("li", { "data-batch-id": batch.id }, open, el("span", { class: "when", text: ` ${when}` }));
    });
    list.replaceChildren(...items);
    $("#recent-empty").hidden = items.length > 0;
  } catch (err) {
    $("#recent-empty").hidden = true;
  }
}

function seconds(s) {
  if (s === null || s === undefined) return "working it out";
  if (s < 90) return `${Math.round(s)} s`;
  return `${Math.round(s / 60)} min`;
}

function showBatch(view, batch) {
  const { card, fill, bar } = view;
  const pct = batch.progress_percent;
  fill.style.width = `${pct}%`;
  bar.setAttribute("aria-valuenow", String(pct));
  bar.setAttribute("aria-label", `${pct}% recognised`);
  $(".batch-name", card).textContent = batch.name || "batch";
  const state = $(".batch-state", card);
  state.textContent = `${batch.status} · ${pct}%`;
  state.className = `batch-state status ${batch.status === "partial" ? "failed" : batch.status}`;
  const rate = batch.images_per_second ? ` · ${batch.images_per_second} images/s` : "";
  const ended = BATCH_FINAL.has(batch.status);
  const eta = ended || batch.status === "cancelling" ? "" : ` · ETA ${seconds(batch.eta_seconds)}`;
  const cancelled = batch.cancelled ? `, ${batch.cancelled} cancelled` : "";
  const finished = batch.done + batch.failed + (batch.cancelled || 0);
  $(".counts", card).textContent =
    `${finished} of ${batch.total} finished: ${batch.done} done, ${batch.failed} failed${cancelled}, ` +
    `${batch.queued} queued, ${batch.running} running${rate}${eta}`;
  view.cancel.hidden = ended || batch.status === "cancelling";
  fill.classList.toggle("stopped", batch.status === "cancelling" || batch.status === "cancelled");
}

function showRefused(card, accepted) {
  const box = $(".refused", card);
  const lines = [
    ...(accepted.failed || []).map((f) => `${f.file}: ${f.error}`),
    ...(accepted.skipped || []).map((s) => `${s.file}: skipped, ${s.reason}`),
  ];
  if (!lines.length) return;
  const details = el("details", {}, el("summary", { text: `${lines.length} file(s) refused or skipped` }));
  const list = el("ul");
  for (const line of lines) list.append(el("li", { text: line }));
  details.append(list);
  box.replaceChildren(details);
}

async function openBatch(id, accepted = null) {
  const error = $("#batch-error");
  error.hidden = true;
  if (openBatches.has(id)) return;
  const view = batchCard(id);
  openBatches.set(id, view);
  $("#batch-list").prepend(view.card);
  if (accepted) showRefused(view.card, accepted);
  history.replaceState(null, "", `#batch=${id}`);
  try {
    for (;;) {
      const batch = await api(`/v1/batches/${id}`);
      showBatch(view, batch);
      if (BATCH_FINAL.has(batch.status)) return;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  } catch (err) {
    view.card.remove();
    openBatches.delete(id);
    error.textContent = err.message;
    error.hidden = false;
  }
}

function setUpBatches() {
  $("#open-batch").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("#batch-id").value.trim();
    if (id) openBatch(id);
  });
  const match = /batch=([0-9a-fA-F-]{36})/.exec(location.hash);
  if (match) openBatch(match[1]);
  listRecentBatches();
}

setUpKey();
setUpDrawing();
setUpUpload();
setUpBatches();
