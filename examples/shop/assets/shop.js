// The shop's page: plain DOM and fetch, no framework. Every request's answer names the
// instance that served it (the x-instance header); the page shows it beside each action.
"use strict";

const $ = (id) => document.getElementById(id);
// Answers worth another try: the store was briefly away (503: nothing was saved), or, for
// a request that may be repeated (GET, PUT, DELETE), the proxy lost the instance (502/504)
// or the connection failed. A POST that may have been applied is not sent twice.
const IDEMPOTENT = new Set(["GET", "PUT", "DELETE"]);
const retryable = (method, status) =>
  status === 503 || (IDEMPOTENT.has(method) && (status === 502 || status === 504));
const MAX_TRIES = 8;
const LOG_LINES = 40;

function log(method, path, status, instance) {
  $("last-instance").textContent = instance || "–";
  const line = document.createElement("li");
  line.textContent = `${method} ${path} → ${status}` + (instance ? ` by ${instance}` : "");
  $("log").prepend(line);
  while ($("log").children.length > LOG_LINES) $("log").lastChild.remove();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One request, retried while no instance could answer; resolves to {status, json}.
async function api(method, path, body, raw) {
  const headers = {};
  if (body !== undefined && !raw) headers["Content-Type"] = "application/json";
  let failure;
  for (let attempt = 0; attempt < MAX_TRIES; attempt++) {
    try {
      const response = await fetch(path, {
        method,
        headers,
        body: raw ? body : body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
      });
      const instance = response.headers.get("x-instance");
      log(method, path, response.status, instance);
      const text = await response.text();
      let json = null;
      try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
      if (!retryable(method, response.status)) return { status: response.status, json, instance };
      failure = `${response.status}`;
    } catch (error) {
      log(method, path, "network error", null);
      failure = String(error);
      if (!IDEMPOTENT.has(method)) break;
    }
    await sleep(200 * (attempt + 1));
  }
  throw new Error(`${method} ${path} failed: ${failure}`);
}

function errorOf(reply) {
  return (reply.json && reply.json.error) || `HTTP ${reply.status}`;
}

// ---- account ----------------------------------------------------------------------

function showUser(user) {
  $("login-form").hidden = !!user;
  $("logged-in").hidden = !user;
  $("whoami").textContent = user ? `Logged in as ${user}` : "";
  for (const id of ["cart-section", "upload-section"]) $(id).classList.toggle("disabled", !user);
}

async function refreshUser() {
  const reply = await api("GET", "/me");
  const user = reply.status === 200 ? reply.json.user : null;
  showUser(user);
  if (user) await refreshCart();
  else renderCart([]);
  return user;
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const reply = await api("POST", "/login", { user: $("user").value });
  if (reply.status !== 200) {
    $("whoami").textContent = errorOf(reply);
    return;
  }
  showUser(reply.json.user);
  await refreshCart();
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/logout");
  showUser(null);
  renderCart([]);
  $("order").textContent = "";
});

// ---- cart -------------------------------------------------------------------------

function renderCart(items) {
  const body = $("cart-items");
  body.replaceChildren();
  for (const { sku, qty } of items) {
    const row = document.createElement("tr");
    row.dataset.sku = sku;
    row.dataset.qty = String(qty);
    const name = document.createElement("td");
    name.textContent = sku;
    const amount = document.createElement("td");
    const input = document.createElement("input");
    input.type = "number";
    input.min = "0";
    input.max = "1000";
    input.value = String(qty);
    input.setAttribute("aria-label", `Quantity of ${sku}`);
    amount.append(input);
    const actions = document.createElement("td");
    const update = document.createElement("button");
    update.type = "button";
    update.textContent = "Update";
    update.setAttribute("aria-label", `Update ${sku}`);
    update.addEventListener("click", () => setQuantity(sku, Number(input.value)));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove ${sku}`);
    remove.addEventListener("click", () => removeItem(sku));
    actions.append(update, " ", remove);
    row.append(name, amount, actions);
    body.append(row);
  }
  $("cart-empty").hidden = items.length > 0;
  $("cart-table").hidden = items.length === 0;
}

async function refreshCart() {
  const reply = await api("GET", "/cart");
  renderCart(reply.status === 200 ? reply.json.items : []);
}

$("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const reply = await api("POST", "/cart/items", {
    sku: $("sku").value.trim(),
    qty: Number($("qty").value),
  });
  $("order").textContent = reply.status === 200 ? "" : errorOf(reply);
  await refreshCart();
});

async function setQuantity(sku, qty) {
  const reply = await api("PUT", `/cart/items/${encodeURIComponent(sku)}`, { qty });
  $("order").textContent = reply.status === 200 ? "" : errorOf(reply);
  await refreshCart();
}

async function removeItem(sku) {
  await api("DELETE", `/cart/items/${encodeURIComponent(sku)}`);
  await refreshCart();
}

$("checkout").addEventListener("click", async () => {
  const reply = await api("POST", "/checkout");
  if (reply.status === 200) {
    const lines = reply.json.items.map((item) => `${item.qty} × ${item.sku}`).join(", ");
    $("order").textContent = `Order ${reply.json.order}: ${lines}`;
  } else {
    $("order").textContent = errorOf(reply);
  }
  await refreshCart();
});

// ---- uploads ----------------------------------------------------------------------
//
// POST /uploads declares the file and gets the chunk size (1 MiB, or 5 MiB, S3's least
// part size, with object storage); each chunk is a PUT that any instance takes; GET
// /uploads/{id} tells which chunks were received, so an upload resumes where it stopped.

const upload = { id: null, file: null, chunkSize: 0, paused: false, running: false };

function setProgress(bytes, size) {
  $("progress").max = size || 1;
  $("progress").value = bytes;
  const text = `${bytes} of ${size} bytes (${Math.floor((100 * bytes) / (size || 1))} %)`;
  $("progress").setAttribute("aria-valuetext", text);
  $("progress-text").textContent = text;
}

function setButtons() {
  $("pause").disabled = !upload.running;
  $("resume").disabled = upload.running || !upload.id;
}

async function sha256Hex(file) {
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sendMissingChunks() {
  upload.running = true;
  upload.paused = false;
  setButtons();
  try {
    const status = await api("GET", `/uploads/${upload.id}`);
    if (status.status !== 200) throw new Error(errorOf(status));
    const received = new Set(status.json.received);
    let bytes = status.json.bytes;
    const size = upload.file.size;
    setProgress(bytes, size);
    const count = Math.ceil(size / upload.chunkSize);
    for (let n = 0; n < count; n++) {
      if (received.has(n)) continue;
      if (upload.paused) {
        $("upload-status").textContent = `Paused at ${bytes} of ${size} bytes`;
        return;
      }
      const chunk = upload.file.slice(n * upload.chunkSize, Math.min(size, (n + 1) * upload.chunkSize));
      const reply = await api("PUT", `/uploads/${upload.id}/chunks/${n}`, chunk, true);
      if (reply.status !== 200) throw new Error(errorOf(reply));
      bytes = reply.json.bytes;
      setProgress(bytes, size);
      $("upload-status").textContent = `Chunk ${n + 1} of ${count} received by ${reply.instance}`;
    }
    const done = await api("POST", `/uploads/${upload.id}/complete`);
    if (done.status !== 200) throw new Error(errorOf(done));
    const local = await sha256Hex(upload.file);
    const same = done.json.sha256 === local ? "matches" : "DIFFERS from";
    const where = done.json.object_key ? `, stored as ${done.json.object_key}` : "";
    $("upload-status").textContent =
      `Upload complete: ${done.json.bytes} bytes, SHA-256 ${done.json.sha256} ${same} the file's${where}`;
    localStorage.removeItem("upload");
    upload.id = null;
  } catch (error) {
    $("upload-status").textContent = `Upload interrupted (${error.message}): press Resume`;
  } finally {
    upload.running = false;
    setButtons();
  }
}

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file || upload.running) return;
  upload.file = file;
  // The same file after a reload: carry on with the upload the session already has.
  const saved = JSON.parse(localStorage.getItem("upload") || "null");
  if (saved && saved.name === file.name && saved.size === file.size) {
    Object.assign(upload, { id: saved.id, chunkSize: saved.chunkSize });
  } else {
    const reply = await api("POST", "/uploads", { name: file.name, size: file.size });
    if (reply.status !== 201) {
      $("upload-status").textContent = errorOf(reply);
      return;
    }
    Object.assign(upload, { id: reply.json.upload, chunkSize: reply.json.chunk_size });
    localStorage.setItem("upload", JSON.stringify({
      id: upload.id, name: file.name, size: file.size, chunkSize: upload.chunkSize,
    }));
  }
  $("upload-mode").textContent = `Chunks of ${upload.chunkSize} bytes`;
  await sendMissingChunks();
});

$("pause").addEventListener("click", () => {
  upload.paused = true;
});

$("resume").addEventListener("click", async () => {
  if (!upload.id || upload.running) return;
  if (!upload.file) upload.file = $("file").files[0];
  if (!upload.file) {
    $("upload-status").textContent = "Choose the same file again to resume";
    return;
  }
  await sendMissingChunks();
});

// ---- fleet (only under `shop fleet`, whose nginx routes /fleet/ to its control) ----

async function refreshFleet() {
  let reply;
  try {
    const response = await fetch("/fleet/instances", { headers: { "X-Fleet-Control": "1" } });
    if (response.status !== 200) return;
    reply = await response.json();
  } catch (_) {
    return;
  }
  $("fleet-section").hidden = false;
  const body = $("fleet-instances");
  body.replaceChildren();
  for (const instance of reply.instances) {
    const row = document.createElement("tr");
    row.dataset.instance = instance.name;
    const cells = [instance.name, String(instance.port), instance.running ? "running" : "stopped"]
      .map((text) => {
        const cell = document.createElement("td");
        cell.textContent = text;
        return cell;
      });
    const actions = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    const action = instance.running ? "kill" : "restart";
    button.textContent = `${instance.running ? "Kill" : "Restart"} ${instance.name}`;
    button.addEventListener("click", () => controlFleet(instance.name, action, button));
    actions.append(button);
    row.append(...cells, actions);
    body.append(row);
  }
}

async function controlFleet(name, action, button) {
  button.disabled = true;
  button.textContent = action === "kill" ? `Killing ${name}…` : `Restarting ${name}…`;
  try {
    await fetch(`/fleet/instances/${encodeURIComponent(name)}/${action}`, {
      method: "POST",
      headers: { "X-Fleet-Control": "1" },
    });
  } finally {
    await refreshFleet();
  }
}

// A request that could not be retried (see `retryable`) says so instead of failing silently.
window.addEventListener("unhandledrejection", (event) => {
  $("error").textContent = `${event.reason && event.reason.message ? event.reason.message : event.reason}: try again`;
});
document.addEventListener("submit", () => { $("error").textContent = ""; }, true);

refreshUser();
refreshFleet();
