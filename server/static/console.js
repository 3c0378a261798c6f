// The statelang console: lists state machines and executions, shows one execution's graph and
// history, and answers its task tokens. Plain JavaScript, no build step, no network beyond the
// server it came from. It polls while an execution runs. The history comes in pages by event id:
// the first with the execution, the next ones when "Load more" is pressed.
"use strict";

const view = document.getElementById("view");
let timer = null;
let shown = "";   // what the execution page shows; a poll that finds the same keeps the page (and typed text)
let hist = { arn: null, events: [], next: null };   // the history pages the execution page has loaded
const PAGE = 100;

const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const token = localStorage.getItem("statelangToken");
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function get(route) {
  const r = await fetch("/console/api/" + route, { headers: headers() });
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || r.statusText);
  return body;
}

async function act(route, payload) {
  const r = await fetch("/console/api/" + route, {
    method: "POST", body: JSON.stringify(payload),
    headers: headers({ "Content-Type": "application/json", "X-Statelang-Console": "1" }),
  });
  const body = await r.json();
  if (!r.ok || body.error) throw new Error((body.error ? body.error + ": " : "") + (body.message || r.statusText));
  return body;
}

const badge = (s) => `<span class="badge ${esc(s)}" data-status="${esc(s)}">${esc(s)}</span>`;
const when = (t) => (t ? new Date(t).toLocaleString() : "");

async function listPage(params) {
  const status = params.get("status") || "";
  const q = params.get("q") || "";
  const machine = params.get("machine") || "";
  const [machines, execs] = await Promise.all([
    get("machines"),
    get("executions?" + new URLSearchParams({ status, q, machine }).toString()),
  ]);
  const mrows = machines.machines.map((m) => `<tr><td><a href="#/?machine=${encodeURIComponent(m.arn)}">${esc(m.name)}</a></td>
      <td>${esc(m.type)}</td><td>${Object.entries(m.counts).map(([k, v]) => badge(k) + " " + v).join(" ")}</td></tr>`).join("");
  const erows = execs.executions.map((e) => `<tr class="execution" data-name="${esc(e.name)}">
      <td><a href="#/execution/${encodeURIComponent(e.arn)}">${esc(e.name)}</a></td><td>${esc(e.machine)}</td>
      <td>${badge(e.status)}</td><td>${when(e.start)}</td><td>${when(e.stop)}</td></tr>`).join("");
  const opts = ["", "RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]
    .map((s) => `<option value="${s}" ${s === status ? "selected" : ""}>${s || "any status"}</option>`).join("");
  view.innerHTML = `<h1>State machines</h1>
    <table><thead><tr><th>Name</th><th>Type</th><th>Executions</th></tr></thead><tbody>${mrows ||
      '<tr><td colspan="3" class="muted">none yet</td></tr>'}</tbody></table>
    <h2>Executions ${machine ? "of " + esc(machine.split(":").pop()) + ' <a href="#/">(all)</a>' : ""}</h2>
    <form class="toolbar" id="filter"><select name="status" id="status">${opts}</select>
      <input name="q" id="search" placeholder="search by name" value="${esc(q)}">
      <button type="submit">Filter</button><span class="muted">${execs.total} found</span></form>
    <table id="executions"><thead><tr><th>Name</th><th>State machine</th><th>Status</th><th>Started</th><th>Stopped</th></tr></thead>
      <tbody>${erows || '<tr><td colspan="5" class="muted">no executions</td></tr>'}</tbody></table>`;
  document.getElementById("filter").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams({ status: document.getElementById("status").value,
      q: document.getElementById("search").value });
    if (machine) p.set("machine", machine);
    location.hash = "#/?" + p.toString();
  });
}

function eventDetail(ev) {
  const key = Object.keys(ev).find((k) => k.endsWith("EventDetails"));
  return key ? ev[key] : null;
}

function pretty(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return String(text); }
}

function timeline(events) {
  return events.map((ev) => {
    const d = eventDetail(ev) || {};
    const cls = /Failed|Aborted|TimedOut/.test(ev.type) ? "fail" : /Entered/.test(ev.type) ? "enter" : /Exited|Succeeded/.test(ev.type) ? "exit" : "";
    const parts = [];
    if (d.input !== undefined) parts.push(`<div class="muted">input</div><pre>${esc(pretty(d.input))}</pre>`);
    if (d.output !== undefined) parts.push(`<div class="muted">output</div><pre>${esc(pretty(d.output))}</pre>`);
    if (d.error !== undefined || d.cause !== undefined) parts.push(`<pre>${esc(d.error || "")} ${esc(d.cause || "")}</pre>`);
    return `<li class="${cls}" data-type="${esc(ev.type)}"><b>${ev.id}</b> ${esc(ev.type)} ${d.name ? "<b>" + esc(d.name) + "</b>" : ""}
      <span class="muted">${when(ev.timestamp)}</span>${parts.join("")}</li>`;
  }).join("");
}

async function historyPage(arn, after) {
  return get("history?" + new URLSearchParams({ arn, after: String(after), limit: String(PAGE) }).toString());
}

const lastShown = () => (hist.events.length ? hist.events[hist.events.length - 1].id : 0);

// Add a page to the loaded history; what two overlapping requests both fetched is kept once.
function append(page) {
  const last = lastShown();
  const fresh = page.events.filter((e) => e.id > last);
  hist.events = hist.events.concat(fresh);
  hist.next = page.next;
  return fresh;
}

function moreButton() {
  return hist.next === null ? "" : `<button id="more">Load more (after event ${hist.next})</button>`;
}

// Append the next page to the list in place: the page (its scroll, typed text) stays as it is.
async function loadMore(arn) {
  const page = await historyPage(arn, hist.next);
  if (hist.arn !== arn) return;
  const fresh = append(page);
  document.getElementById("history").insertAdjacentHTML("beforeend", timeline(fresh));
  document.getElementById("more-slot").innerHTML = moreButton();
  wireMore(arn);
  shown = shown.replace(/\|[^|]*$/, "|" + hist.events.length);
}

function wireMore(arn) {
  const more = document.getElementById("more");
  if (more) more.addEventListener("click", () => loadMore(arn).catch((e) => {
    document.getElementById("conn").textContent = "error: " + e.message;
  }));
}

async function executionPage(arn) {
  const data = await get("execution?arn=" + encodeURIComponent(arn));
  const x = data.execution;
  const running = x.status === "RUNNING";
  if (hist.arn !== arn) hist = { arn, events: data.events, next: data.next };
  if (hist.next === null && data.lastEventId > lastShown()) {   // the list was at its end: follow it
    const page = await historyPage(arn, lastShown());
    if (hist.arn === arn) append(page);
  }
  const key = [arn, x.status, data.lastEventId, data.tokens.map((t) => t.token).join(),
    data.lease ? data.lease.owner : "", hist.events.length].join("|");
  if (key === shown) { if (running) timer = setTimeout(route, 1000); return; }
  shown = key;
  const tokens = data.tokens.map((t, i) => `<div class="token" data-token="${esc(t.token)}">
      Waiting in <b>${esc(t.state)}</b> for task token <code>${esc(t.token)}</code>
      <textarea id="output-${i}">{}</textarea>
      <button class="primary answer" data-i="${i}" data-ok="1">Send task success</button>
      <button class="danger answer" data-i="${i}" data-ok="0">Send task failure</button></div>`).join("");
  view.innerHTML = `<h1>${esc(x.name)} ${badge(x.status)}</h1>
    <div class="panel kv"><span>Execution</span><code>${esc(x.executionArn)}</code>
      <span>State machine</span><code>${esc(x.stateMachineArn)}</code>
      <span>Started</span><span>${when(x.startDate)}</span><span>Stopped</span><span>${when(x.stopDate)}</span>
      ${x.error ? `<span>Error</span><span id="error">${esc(x.error)}: ${esc(x.cause)}</span>` : ""}
      <span>Redrives</span><span>${x.redriveCount || 0}</span>
      ${running ? `<span>Worker</span><span id="lease">${data.lease ? `<code>${esc(data.lease.owner)}</code>
        <span class="muted">lease until ${when(data.lease.expires)}</span>` : '<span class="muted">none (waiting)</span>'}</span>` : ""}</div>
    <div class="toolbar">
      ${running ? '<button class="danger" id="stop">Stop</button>' : ""}
      ${x.redriveStatus === "REDRIVABLE" ? '<button id="redrive">Redrive</button>' : ""}
      <button id="replay">Replay</button><span id="message"></span></div>
    ${tokens}
    <div class="cols"><div class="panel graph" id="graph">${data.svg}</div>
      <div class="panel"><h2>History <span class="muted" id="event-count">${data.lastEventId} events</span></h2>
        <ol class="timeline" id="history">${timeline(hist.events)}</ol><div id="more-slot">${moreButton()}</div></div></div>`;
  wireMore(arn);
  const say = (text) => { document.getElementById("message").innerHTML = `<span class="msg">${esc(text)}</span>`; };
  const run = async (fn) => { try { say(await fn()); shown = ""; setTimeout(route, 300); } catch (e) { say(e.message); } };
  view.querySelectorAll("button.answer").forEach((b) => b.addEventListener("click", () => run(async () => {
    const t = data.tokens[Number(b.dataset.i)];
    const out = document.getElementById("output-" + b.dataset.i).value;
    if (b.dataset.ok === "1") await act("task", { token: t.token, ok: true, output: out });
    else await act("task", { token: t.token, ok: false, error: "Rejected", cause: out });
    return "Answered " + t.state;
  })));
  const stop = document.getElementById("stop");
  if (stop) stop.addEventListener("click", () => run(async () => { await act("stop", { arn }); return "Stopped"; }));
  const redrive = document.getElementById("redrive");
  if (redrive) redrive.addEventListener("click", () => run(async () => { await act("redrive", { arn }); return "Redriven"; }));
  document.getElementById("replay").addEventListener("click", async () => {
    try {
      const r = await act("replay", { arn });
      say(r.ok ? `Replay matches the record (${r.events} events, ${r.status})` : "Replay diverged: " + r.divergence);
    } catch (e) { say(e.message); }
  });
  if (running) timer = setTimeout(route, 1000);
}

async function route() {
  clearTimeout(timer);
  const hash = location.hash || "#/";
  const m = /^#token=(.+)$/.exec(hash);
  if (m) { localStorage.setItem("statelangToken", decodeURIComponent(m[1])); location.hash = "#/"; return; }
  try {
    if (hash.startsWith("#/execution/")) await executionPage(decodeURIComponent(hash.slice("#/execution/".length)));
    else { shown = ""; hist = { arn: null, events: [], next: null }; await listPage(new URLSearchParams(hash.split("?")[1] || "")); }
    document.getElementById("conn").textContent = "";
  } catch (e) {
    document.getElementById("conn").textContent = "error: " + e.message;
  }
}

window.addEventListener("hashchange", route);
route();
