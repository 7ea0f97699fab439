// opmetrics dashboard: fetches the JSON API (same origin, session cookie) and renders tables
// and Plotly charts. Values are inserted as text, never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);
// The pack's rule (src/opmetrics/format.py): truncated to two decimals, allowing for the float's last bits.
const pct = (v) => (v === null || v === undefined ? "–" : (Math.floor(v * 100 + 1e-9) / 100).toFixed(2) + "%");
const num = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-GB"));
const rag = (s) => ({ "target met": "green", "below target": "amber", "below minimum": "red" })[s] || "grey";

async function api(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  const res = await fetch(path + (q.toString() ? "?" + q : ""), { credentials: "same-origin" });
  if (res.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return []; }
  const body = await res.json();
  if (!res.ok) throw new Error(body.detail || res.statusText);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function table(target, headers, rows, opts = {}) {
  const t = el("table");
  t.append(el("tr", {}, ...headers.map((h, i) => el("th", { class: i === 0 ? "l" : "" }, h))));
  for (const r of rows) {
    const tr = el("tr", r.attrs || {}, ...r.cells.map((c, i) => {
      const td = el("td", { class: i < (opts.left || 1) ? "l" : "" });
      td.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
      return td;
    }));
    t.append(tr);
  }
  const box = typeof target === "string" ? $(target) : target;
  box.replaceChildren(t);
  return t;
}

// A stored percentage as the server formatted it (format.with_text), the one text of the pack.
const pt = (r, k) => (r && r[k + "_text"] !== undefined ? r[k + "_text"] : pct(r ? r[k] : null));
const badge = (r, k, status) => el("span", { class: "rag " + rag(status), title: status || "" }, pt(r, k));
const period = () => ($("#period") ? $("#period").value : null);
const plotOpts = { responsive: true, displaylogo: false };

// --- System -----------------------------------------------------------------------------------
async function liveAlerts() {
  const rows = await api("/api/alerts");
  if (!rows.length) { $("#live-alerts").replaceChildren(el("p", { class: "note" }, "No open alerts.")); return; }
  table("#live-alerts", ["Opened (UTC)", "Severity", "Alert", "Top cause"], rows.map((a) => {
    const rc = JSON.parse(a.root_cause || "[]")[0];
    return { cells: [a.opened_at, a.severity, a.message, rc ? `${rc.dimension} = ${rc.value}` : ""] };
  }), { left: 4 });
}

async function systemPage() {
  liveAlerts(); setInterval(liveAlerts, 30000);
  const s = await api("/api/system");
  $("#sys-when").textContent = `Period ${s.period}; latest day in the data: ${s.day}.`;
  const today = {}; for (const r of s.availability_today) today[r.subject + "|" + r.region] = r;
  table("#avail-today", ["Service", "Latest day", "Month so far", "Status"],
    s.availability_month.map((r) => {
      const d = today[r.subject + "|All"] || Object.values(today).find((x) => x.subject === r.subject);
      return { cells: [r.subject, pt(d, "pct"), badge(r, "pct", r.status), r.status] };
    }));
  const byProc = {};
  for (const r of s.hourly) (byProc[r.process_id] = byProc[r.process_id] || []).push(r);
  Plotly.newPlot("hourly-chart", Object.entries(byProc).map(([p, rs]) => ({
    x: rs.map((r) => r.hour), y: rs.map((r) => r.success_pct), name: p, mode: "lines+markers",
    hovertemplate: "%{x}<br>%{y:.2f}% success<extra>" + p + "</extra>" })),
    { margin: { t: 10 }, yaxis: { title: "success %" }, legend: { orientation: "h" } }, plotOpts);
  table("#open-incidents", ["Incident", "Category", "Region", "Raised", "Summary"],
    s.open_incidents.map((i) => ({ cells: [i.incident_id, String(i.category), i.region || "all", i.raised_at, i.summary || ""] })));
  const all = await api("/api/cpm");
  const missed = all.filter((r) => r.instance && (r.status === "below target" || r.status === "below minimum"));
  table("#missed", ["Measure", "Scope", "Segment", "Actual", "Target", "Drill down"],
    missed.map((r) => ({ cells: [r.cpm, r.key, r.segment, badge(r, "pct", r.status), r.target + "%",
      r.cpm === "CPM6A" ? el("a", { href: `/process/${r.key}?region=${encodeURIComponent(r.segment)}` }, "open " + r.key + " in " + r.segment) : ""] })), { left: 3 });
  const cpm = all.filter((r) => r.segment === "All");
  table("#cpm-table", ["CPM", "Scope", "Actual", "Target", "Minimum", "Status"],
    cpm.filter((r) => r.instance).map((r) => ({ cells: [r.cpm, r.key, badge(r, "pct", r.status), r.target + "%", r.minimum + "%", r.status] })), { left: 2 });
}

// --- Process: month, daily chart, drill-down ---------------------------------------------------
const DRILL = ["day", "srv", "region", "device_type", "party"];
async function processPage() {
  const proc = document.body.dataset.process;
  const load = async () => {
    const month = await api("/api/rsvp", { period: period(), scope: "process", key: proc, rate: "month" });
    table("#month-table", ["Segment", "Volume", "Failures", "Success", "Within TRT", "Mean RTT (s)", "Median RTT (s)"],
      month.map((r) => ({ cells: [r.segment, num(r.volume), num(r.failures), pt(r, "success_pct"), pt(r, "within_trt_pct"),
        r.rtt_mean_s === null ? "–" : r.rtt_mean_s.toFixed(1), r.rtt_median_s === null ? "–" : r.rtt_median_s.toFixed(1)] })));
    const daily = await api("/api/rsvp", { period: period(), scope: "process", key: proc, rate: "day", segment: "All" });
    const all = month.find((r) => r.segment === "All");
    Plotly.newPlot("daily-chart", [
      { x: daily.map((r) => r.day), y: daily.map((r) => r.volume), type: "bar", name: "volume", marker: { color: "#9dc3e6" } },
      { x: daily.map((r) => r.day), y: daily.map((r) => r.rtt_mean_s), name: "average RTT (s)", yaxis: "y2", mode: "lines+markers", line: { color: "#1f4e79" } },
      { x: daily.map((r) => r.day), y: daily.map(() => (all ? all.rtt_mean_s : null)), name: "monthly average RTT", yaxis: "y2", mode: "lines", line: { color: "#c00000", dash: "dot" } },
      { x: daily.map((r) => r.day), y: daily.map((r) => r.failures), name: "failures", yaxis: "y3", mode: "lines", line: { color: "#c55a11" } },
    ], { margin: { t: 10 }, yaxis: { title: "volume" }, yaxis2: { overlaying: "y", side: "right", title: "RTT (s)", showgrid: false, rangemode: "tozero" },
         yaxis3: { overlaying: "y", side: "right", visible: false, rangemode: "tozero" }, legend: { orientation: "h" }, hovermode: "x unified" }, plotOpts);
    filters = initial(); drill(); diagnostics(); legs();
  };
  const legs = async () => {
    const rows = await api("/api/legs", { period: period(), process: proc });
    if (!rows.length || !rows.some((r) => r.with_legs)) {
      $("#legs-table").replaceChildren(el("p", { class: "note" }, "The legs of the journey are not in this month's input: no DCC proxy."));
      return;
    }
    const s = (v) => (v === null ? "–" : v.toFixed(1));
    table("#legs-table", ["Segment", "On-demand requests", "With legs", "To CHF/GPF median (s)", "RTT median (s)", "RTT without home network (s)", "Home network median (s)", "DSP median (s)", "DSP within its TRT share"],
      rows.map((r) => ({ cells: [r.breakdown === "All" ? "All" : r.key, num(r.requests), pt(r, "coverage_pct"), s(r.proxy_median_s), s(r.rtt_median_s), s(r.rtt_excl_han_median_s), s(r.han_median_s), s(r.dsp_median_s), pt(r, "dsp_within_pct")] })));
  };
  const diagnostics = async () => {
    const pick = $("#diag-party");
    let rows = await api("/api/diagnostics", { period: period(), process: proc, party: pick && pick.value ? pick.value : null });
    if (pick && !pick.value) {
      const parties = [...new Set(rows.map((r) => r.party_id))];
      pick.replaceChildren(...parties.map((x) => el("option", { value: x }, x)));
      pick.onchange = diagnostics;
      rows = rows.filter((r) => r.party_id === parties[0]);
    }
    if (!rows.length) { $("#diagnostics").replaceChildren(el("p", { class: "note" }, "Too few requests to compare this month.")); return; }
    const head = rows[0];
    const gap = el("p", {}, `${head.party_id}: ${pt(head, "party_pct")} success against ${pt(head, "others_pct")} for other parties (${head.gap_pts >= 0 ? "+" : ""}${head.gap_pts.toFixed(1)} points, ${num(head.volume)} requests).`);
    const share = (v) => (v === null ? "–" : v > 100 ? "all of it" : Math.round(v) + " %");
    const t = el("div");
    table(t, ["#", "Explanation", "Failures explained", "Share of the gap", "Evidence"], rows.filter((r) => r.rank > 0).map((r) => ({
      cells: [String(r.rank), `${r.factor}: ${r.value}`, num(Math.round(r.failures_explained)), share(r.gap_share_pct), r.evidence] })), { left: 2 });
    $("#diagnostics").replaceChildren(gap, t);
  };
  // A link from a missed target may start the drill-down in one region (?region=North).
  const initial = () => { const q = new URLSearchParams(location.search); const f = {};
    for (const k of ["region", "srv", "day", "device_type"]) if (q.get(k)) f[k] = q.get(k); return f; };
  let filters = {};
  const drill = async () => {
    const by = DRILL.find((d) => !(d in filters)) || null;
    const crumbs = [el("a", { href: "#", onclick: (e) => { e.preventDefault(); filters = {}; drill(); } }, "All requests")];
    Object.entries(filters).forEach(([k, v], i) => {
      crumbs.push(document.createTextNode(" › "));
      crumbs.push(el("a", { href: "#", onclick: (e) => { e.preventDefault(); filters = Object.fromEntries(Object.entries(filters).slice(0, i + 1)); drill(); } }, `${k} ${v}`));
    });
    $("#crumbs").replaceChildren(...crumbs);
    if (!by) { $("#drill-table").replaceChildren(el("p", { class: "note" }, "End of the drill-down.")); Plotly.purge("drill-chart"); return; }
    let rows;
    try { rows = await api("/api/drill", { period: period(), process: proc, by, ...filters }); }
    catch (err) { $("#drill-table").replaceChildren(el("p", { class: "error" }, err.message)); return; }
    const go = (r) => { if (r.drillable) { filters = { ...filters, [by]: r.key }; drill(); } };
    // A party's own row is marked "(you)": a letter ("Supplier A") is always another party.
    const label = (r) => (r.own ? r.key + " (you)" : r.key);
    Plotly.newPlot("drill-chart", [{ x: rows.map(label), y: rows.map((r) => r.success_pct), type: "bar", marker: { color: "#1f4e79" },
      customdata: rows.map((r) => [num(r.volume), pt(r, "success_pct"), pt(r, "within_trt_pct")]), hovertemplate: "%{x}<br>success %{customdata[1]}<br>volume %{customdata[0]}<br>within TRT %{customdata[2]}<extra></extra>" }],
      { margin: { t: 10 }, yaxis: { title: "success % by " + by, range: [Math.max(0, Math.min(...rows.map((r) => r.success_pct ?? 100)) - 2), 100.5] },
        xaxis: { type: "category" } }, plotOpts);
    document.getElementById("drill-chart").on("plotly_click", (ev) => go(rows[ev.points[0].pointIndex]));
    table("#drill-table", [by, "Volume", "Failures", "Success", "Within TRT", "Mean RTT (s)"],
      rows.map((r) => ({ attrs: r.drillable ? { class: "click", "data-key": r.key } : {}, cells: [label(r), num(r.volume), num(r.failures), pt(r, "success_pct"), pt(r, "within_trt_pct"), r.rtt_mean_s === null ? "–" : r.rtt_mean_s.toFixed(1)] })));
    $("#drill-table").querySelectorAll("tr.click").forEach((tr, i) => tr.addEventListener("click", () => go(rows.filter((r) => r.drillable)[i])));
  };
  $("#period").addEventListener("change", load);
  await load();
}

// --- Availability -----------------------------------------------------------------------------
async function availabilityPage() {
  const load = async () => {
    const rows = await api("/api/availability", { period: period() });
    const svc = rows.filter((r) => r.view === "service");
    const names = [...new Set(svc.map((r) => r.subject))];
    const cell = (s, region, band) => { const r = svc.find((x) => x.subject === s && x.region === region && x.band === band); return r ? pt(r, "pct") : "N/A"; };
    table("#services", ["Service", "Month", "Activity hours", "Other hours", "North", "Central", "South", "SMETS1", "Unplanned downtime (h)"],
      names.map((s) => { const h = svc.find((x) => x.subject === s && x.region === "All" && x.band === "all");
        return { cells: [s, badge(h, "pct", h.status), cell(s, "All", "core"), cell(s, "All", "other"), cell(s, "North", "all"), cell(s, "Central", "all"), cell(s, "South", "all"), cell(s, "SMETS1", "all"), (h.unplanned_min / 60).toFixed(2)] }; }));
    const daily = rows.filter((r) => r.view === "daily");
    Plotly.newPlot("avail-chart", names.map((s) => {
      const by = {}; for (const r of daily.filter((x) => x.subject === s)) by[r.day] = Math.min(by[r.day] ?? 100, r.pct);
      const days = Object.keys(by).sort();
      return { x: days, y: days.map((d) => by[d]), name: s, mode: "lines+markers" };
    }), { margin: { t: 10 }, yaxis: { title: "service level % (worst region)" }, legend: { orientation: "h" } }, plotOpts);
    const proc = rows.filter((r) => r.view === "process" && r.region === "All");
    table("#processes", ["Business process", "Service level", "Status"], proc.map((r) => ({ cells: [r.subject, pt(r, "pct"), r.status] })));
  };
  $("#period").addEventListener("change", load);
  await load();
}

// --- League -----------------------------------------------------------------------------------
async function leaguePage() {
  const load = async () => {
    const tables = await api("/api/league", { period: period() });
    const box = $("#league"); box.replaceChildren();
    for (const t of tables) {
      box.append(el("h2", {}, t.process));
      const holder = el("div"); box.append(holder);
      const rows = t.entries.map((e) => ({ attrs: e.own ? { class: "own" } : {}, cells: [String(e.rank), e.own ? e.party + " (you)" : e.party, pt(e, "pct"), ((e.pct - t.industry_pct) >= 0 ? "+" : "") + (e.pct - t.industry_pct).toFixed(2) + " pp"] }));
      rows.push({ cells: ["", "Industry average", pt(t, "industry_pct"), ""] }, { cells: ["", "Best in class", pt(t, "best_pct"), ""] });
      table(holder, ["Rank", "Party", "Success", "vs industry"], rows, { left: 2 });
    }
  };
  $("#period").addEventListener("change", load);
  await load();
}

// --- Downloads --------------------------------------------------------------------------------
async function downloadsPage() {
  const files = await api("/api/downloads");
  const edition = (e) => (e === "public" ? "Public" : e === "confidential" ? "Confidential (DCC and SEC Panel)" : "Party edition (" + e.slice(6) + ")");
  table("#files", ["File", "Edition", "Size"], files.map((f) => ({ cells: [el("a", { href: "/downloads/" + f.name }, f.name), edition(f.edition), num(f.bytes) + " bytes"] })));
}

const pages = { system: systemPage, process: processPage, availability: availabilityPage, league: leaguePage, downloads: downloadsPage };
const fn = pages[document.body.dataset.page];
if (fn) fn().catch((err) => document.querySelector("main").prepend(el("p", { class: "error" }, "Could not load: " + err.message)));
