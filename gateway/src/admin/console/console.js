// The status console: signs in with the admin token (kept in this tab's sessionStorage only)
// and shows GET /status, asked again a few seconds after each answer. Everything is written
// with textContent, never as HTML, so names from the index cannot inject markup.
"use strict";

const POLL_MS = 3000;
let timer = null;
// Bumped at every sign-in and sign-out: an answer to a request of an earlier session is dropped,
// so one polling loop runs at a time.
let session = 0;

const $ = (id) => document.getElementById(id);

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "";
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fill(tableId, items, render) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren();
  for (const item of items) render(body.insertRow(), item);
  if (items.length === 0) {
    const td = body.insertRow().insertCell();
    td.colSpan = $(tableId).tHead.rows[0].cells.length;
    td.textContent = "none";
    td.className = "muted";
  }
}

function render(status) {
  const down = status.volumes.filter((v) => !v.healthy);
  const health = $("health");
  health.textContent = down.length === 0
    ? "healthy: " + status.volumes.length + " volumes up"
    : "degraded: " + down.length + " of " + status.volumes.length + " volumes down";
  health.className = "pill " + (down.length === 0 ? "ok" : "degraded");

  const summary = $("summary");
  summary.replaceChildren();
  const facts = [
    ["Cluster id", status.cluster_id],
    ["Membership epoch", status.membership_epoch],
    ["Buckets", status.buckets],
    ["Objects", status.objects],
    ["Bytes (one copy)", bytes(status.bytes)],
    ["Repair queue", status.repair_queue + " blobs"],
    ["GC queue", status.gc_queue + " blobs, " + bytes(status.gc_queue_bytes || 0)],
  ];
  for (const [name, value] of facts) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    dd.dataset.fact = name;
    summary.append(dt, dd);
  }

  fill("volumes", status.volumes, (row, v) => {
    row.dataset.volume = v.url;
    cell(row, v.id);
    cell(row, v.url);
    cell(row, v.zone || "");
    cell(row, v.weight, "number");
    cell(row, v.healthy ? "up" : "DOWN", v.healthy ? "up" : "down").dataset.health = v.healthy ? "up" : "down";
    const total = v.total_bytes || [];
    cell(row, v.free_bytes.map((free, i) => bytes(free) + (total[i] ? " of " + bytes(total[i]) : "")).join("; "));
  });

  const buckets = Object.entries(status.bucket_usage || {});
  fill("buckets", buckets, (row, [name, usage]) => {
    row.dataset.bucket = name;
    cell(row, name);
    cell(row, usage.objects, "number");
    cell(row, bytes(usage.bytes), "number");
  });

  const jobs = ["gc", "verify", "rebalance"].flatMap((kind) => status.jobs[kind] ? [[kind, status.jobs[kind]]] : []);
  fill("jobs", jobs, (row, [kind, job]) => {
    const [done, total] = kind === "gc" ? [job.queue_done, job.queue_total]
      : kind === "verify" ? [job.objects_done, job.objects_total]
      : [job.entries_done, job.entries_total];
    row.dataset.job = kind;
    cell(row, kind);
    cell(row, job.state);
    cell(row, total ? done + " of " + total + " (" + Math.floor(100 * done / total) + "%)" : String(done), "number");
    cell(row, job.errors, "number");
    cell(row, when(job.started_ms));
    cell(row, when(job.finished_ms));
    cell(row, job.last_error || "");
  });

  fill("gateways", status.gateways || [], (row, g) => {
    cell(row, g.id);
    cell(row, g.s3_address);
    cell(row, g.admin_address);
    cell(row, when(g.beat_ms));
  });
  $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
}

async function poll(mine) {
  const token = sessionStorage.getItem("cairn-admin-token");
  if (!token || mine !== session) return;
  try {
    const answer = await fetch("/status", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
    if (mine !== session) return;
    if (answer.status === 401) {
      signOut("The admin token was not accepted.");
      return;
    }
    if (!answer.ok) throw new Error("status " + answer.status + ": " + (await answer.text()));
    const status = await answer.json();
    if (mine !== session) return;
    render(status);
    $("error").textContent = "";
  } catch (err) {
    if (mine !== session) return;
    $("error").textContent = "The gateway did not answer: " + err.message;
  }
  timer = setTimeout(() => poll(mine), POLL_MS);
}

function show(signedIn) {
  $("login").hidden = signedIn;
  $("console").hidden = !signedIn;
  $("logout").hidden = !signedIn;
}

function start() {
  clearTimeout(timer);
  session += 1;
  show(true);
  poll(session);
}

function signOut(why) {
  clearTimeout(timer);
  session += 1;
  sessionStorage.removeItem("cairn-admin-token");
  $("health").textContent = "not signed in";
  $("health").className = "pill";
  $("login-error").textContent = why || "";
  show(false);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("cairn-admin-token", $("token").value);
    $("token").value = "";
    $("login-error").textContent = "";
    start();
  });
  $("logout").addEventListener("click", () => signOut());
  if (sessionStorage.getItem("cairn-admin-token")) start();
});
