"use strict";
const $ = (id) => document.getElementById(id);
let messages = [];
let selectedId = null;
let listSignature = null;

// Subjects and display names arrive RFC 2047-encoded (=?utf-8?b?...?=) in MailHog's JSON.
function decodeWords(value) {
  return value.replace(/=\?([^?]+)\?([bBqQ])\?([^?]*)\?=(\s+(?==\?))?/g, (word, charset, enc, text) => {
    let bytes;
    if (enc.toUpperCase() === "B") {
      bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    } else {
      const q = text.replace(/_/g, " ");
      const out = [];
      for (let i = 0; i < q.length; i++) {
        const hex = q.substr(i + 1, 2);
        if (q[i] === "=" && /^[0-9A-Fa-f]{2}$/.test(hex)) { out.push(parseInt(hex, 16)); i += 2; }
        else out.push(q.charCodeAt(i));
      }
      bytes = new Uint8Array(out);
    }
    try { return new TextDecoder(charset).decode(bytes); } catch { return word; }
  });
}

function header(msg, name) {
  const key = Object.keys(msg.Content.Headers).find((k) => k.toLowerCase() === name.toLowerCase());
  return key ? decodeWords(msg.Content.Headers[key].join(", ")) : "";
}

const address = (path) => path.Domain ? `${path.Mailbox}@${path.Domain}` : path.Mailbox;
const messageUrl = (id) => `api/v1/messages/${encodeURIComponent(id)}`;
// Our own endpoints beside MailHog's API: the decoded parts, and the HTML body as a page.
const devUrl = (id) => `api/dev/messages/${encodeURIComponent(id)}`;

function cell(row, text) {
  const td = row.insertCell();
  td.textContent = text;
  td.title = text;
}

function renderList(total) {
  $("count").textContent = `(${total})`;
  $("no-messages").hidden = messages.length > 0;
  const rows = $("rows");
  rows.replaceChildren();
  for (const msg of messages) {
    const row = rows.insertRow();
    row.dataset.id = msg.ID;
    row.classList.toggle("selected", msg.ID === selectedId);
    cell(row, header(msg, "From") || address(msg.From));
    cell(row, msg.To.map(address).join(", "));
    cell(row, header(msg, "Subject"));
    cell(row, new Date(msg.Created).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
    row.addEventListener("click", () => select(msg.ID));
  }
}

// MailHog's defaults for Jim (monkey/jim.go), sent explicitly: a POST without a body would
// bring back whatever settings were last sent, as in MailHog.
const JIM_DEFAULTS = {
  DisconnectChance: 0.005, AcceptChance: 0.99, LinkSpeedAffect: 0.1, LinkSpeedMin: 1024,
  LinkSpeedMax: 10240, RejectSenderChance: 0.05, RejectRecipientChance: 0.05, RejectAuthChance: 0.05,
};

function showJim(state) {
  const on = Boolean(state && state.enabled);
  const toggle = $("jim-toggle");
  toggle.checked = on;
  $("jim-switch").classList.toggle("on", on);
  const rules = on ? state.settings.Faults.length : 0;
  $("jim-state").textContent = !state ? "unknown" : !on ? "off"
    : rules ? `on, ${rules} fault rule${rules === 1 ? "" : "s"}` : "on";
}

async function refreshJim() {
  try {
    // Our own endpoint: MailHog's GET /api/v2/jim answers 404 while Jim is off.
    const res = await fetch("api/dev/jim");
    showJim(res.ok ? await res.json() : null);
  } catch (err) {
    showJim(null);
  }
}

async function refresh() {
  refreshJim();
  try {
    const res = await fetch("api/v2/messages?limit=250");
    const data = await res.json();
    const signature = data.items.map((m) => m.ID).join();
    $("status").textContent = "";
    if (signature === listSignature) return;
    listSignature = signature;
    messages = data.items;
    renderList(data.total);
    if (selectedId && !messages.some((m) => m.ID === selectedId)) clearDetail();
  } catch (err) {
    $("status").textContent = "inbox unreachable";
  }
}

function clearDetail() {
  selectedId = null;
  $("message").hidden = true;
  $("placeholder").hidden = false;
  $("html-frame").src = "about:blank";
}

function showTab(name) {
  for (const btn of document.querySelectorAll(".tabs button")) {
    btn.classList.toggle("active", btn.dataset.tab === name);
  }
  for (const pane of document.querySelectorAll(".pane")) pane.hidden = pane.dataset.pane !== name;
}

async function select(id) {
  const msg = messages.find((m) => m.ID === id);
  if (!msg) return;
  selectedId = id;
  for (const row of $("rows").rows) row.classList.toggle("selected", row.dataset.id === id);
  const fields = $("fields");
  fields.replaceChildren();
  for (const [label, value] of [
    ["From", header(msg, "From") || address(msg.From)],
    ["To", header(msg, "To") || msg.To.map(address).join(", ")],
    ["Subject", header(msg, "Subject")],
    ["Date", new Date(msg.Created).toLocaleString()],
  ]) {
    fields.append(Object.assign(document.createElement("dt"), { textContent: label }));
    fields.append(Object.assign(document.createElement("dd"), { textContent: value }));
  }
  $("download").href = `${messageUrl(id)}/download`;
  $("headers-body").textContent = Object.entries(msg.Content.Headers)
    .flatMap(([name, values]) => values.map((v) => `${name}: ${v}`)).join("\n");
  $("raw-body").textContent = msg.Raw.Data;
  $("placeholder").hidden = true;
  $("message").hidden = false;

  const res = await fetch(`${devUrl(id)}/parts`);
  if (selectedId !== id) return;
  if (!res.ok) {
    $("status").textContent = `Could not decode the message (HTTP ${res.status}).`;
    showTab("raw");
    return;
  }
  const parts = await res.json();
  // Loaded from the inbox, not written in with srcdoc: a srcdoc document would inherit
  // this page's CSP, which rightly refuses the inline styles every email has.
  $("html-frame").src = parts.html === null ? "about:blank" : `${devUrl(id)}/html`;
  $("text-body").textContent = parts.text ?? "";
  document.querySelector('[data-tab="html"]').disabled = parts.html === null;
  document.querySelector('[data-tab="text"]').disabled = parts.text === null;
  showTab(parts.html !== null ? "html" : parts.text !== null ? "text" : "raw");
}

for (const btn of document.querySelectorAll(".tabs button")) {
  btn.addEventListener("click", () => showTab(btn.dataset.tab));
}

$("delete-one").addEventListener("click", async () => {
  if (!selectedId) return;
  await fetch(messageUrl(selectedId), { method: "DELETE" });
  clearDetail();
  refresh();
});

$("jim-toggle").addEventListener("change", async (event) => {
  const toggle = event.target;
  const turnOn = toggle.checked;
  toggle.disabled = true;
  try {
    const res = await fetch("api/v2/jim", turnOn
      ? { method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify(JIM_DEFAULTS) }
      : { method: "DELETE" });
    $("status").textContent = res.ok ? "" : `Could not turn Jim ${turnOn ? "on" : "off"} (HTTP ${res.status}).`;
  } catch (err) {
    $("status").textContent = "inbox unreachable";
  } finally {
    toggle.disabled = false;
    await refreshJim();
  }
});

$("delete-all").addEventListener("click", async () => {
  if (!confirm("Delete all messages?")) return;
  await fetch("api/v1/messages", { method: "DELETE" });
  clearDetail();
  refresh();
});

refresh();
setInterval(refresh, 3000);
