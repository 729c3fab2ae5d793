// Polls /api/status and renders it; keeps a short history for the rate chart in the page.
"use strict";
const REFRESH_MS = 2000, HISTORY = 150;
const history = { times: [], series: {} };

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fillTable(id, rows, cells) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows.map(r => {
    const tr = el("tr");
    for (const [text, cls] of cells(r)) tr.appendChild(el("td", text, cls));
    return tr;
  }));
}

function fillPairs(id, pairs) {
  const box = document.getElementById(id);
  box.replaceChildren(...Object.entries(pairs).flatMap(([k, v]) => [el("span", k, "muted"), el("span", v)]));
}

function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"]; let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

function worstText(w) {
  if (!w) return "-";
  const where = w.kind + " @ " + (w.project_id || "company");
  return w.intervals_ago === null ? where + ": never polled"
    : where + ": " + w.intervals_ago.toFixed(1) + " intervals (" + Math.round(w.age_s / 60) + " min)";
}

function duration(s) {
  return s >= 3600 ? (s / 3600).toFixed(1) + " h" : s >= 120 ? Math.round(s / 60) + " min" : Math.round(s) + " s";
}

function when(iso) { return iso ? iso.replace("T", " ").slice(0, 19) : "never"; }

function render(s) {
  document.getElementById("updated").textContent = "updated " + when(s.at);
  const errs = Object.entries(s.errors).map(([k, v]) => k + ": " + v).join("; ");
  document.getElementById("source-errors").textContent = errs;
  fillTable("summary", s.summary, r => [
    [r.family, r.critical ? "level-stale" : r.late ? "level-late" : r.ok ? "level-ok" : "level-never"],
    [r.ok], [r.late, r.late ? "level-late" : ""], [r.critical, r.critical ? "level-stale" : ""],
    [r.never], [worstText(r.worst)], [r.records], [r.files_downloaded + "/" + r.files],
    [when(r.last_full_sync_at)]]);
  renderHeatmap(s.heat);
  fillTable("schedule", s.schedule, r => [[r.family], [duration(r.seed_interval_s)],
    [r.planned_interval_s === null ? "-" : duration(r.planned_interval_s)], [r.pairs], [r.at_seed],
    [r.requests_per_min.toFixed(2)], [Math.round(100 * r.budget_share) + " %"]]);
  // one row per alert family (sync-late:* of 40 projects is one row with its count and examples)
  fillTable("alerts", s.alert_groups, a => [[a.severity, "sev-" + a.severity], [a.alert_key], [a.status],
    [a.count], [a.message, "msg"]]);
  fillPairs("errors", s.errors_24h);
  fillPairs("pending", s.pending);
  fillTable("streams", s.streams, r => [[r.stream], [r.group], [r.length], [r.pending], [r.lag]]);
  fillPairs("downloads", Object.fromEntries(Object.entries(s.downloads).map(
    ([k, v]) => [k, v.count + " (" + bytes(v.bytes) + ")"])));
  fillTable("fullsync", s.full_sync, r => [[r.run_id], [r.status], [r.current_phase ?? "-"], [r.items],
    [r.requests], [r.floor], [r.eta_s === null ? "-" : Math.round(r.eta_s) + " s"],
    [(r.reason_lines || []).join("\n"), "msg"]]);
  fillPairs("deadletters", { total: s.dead_letters.total ?? "-", "last 24 h": s.dead_letters.last_24h ?? "-" });
  if (s.disk.free_ratio !== undefined) {
    fillPairs("disk", { path: s.disk.path, free: (100 * s.disk.free_ratio).toFixed(1) + " %",
                        "free bytes": bytes(s.disk.free_bytes) });
  }
  fillTable("processes", s.processes, p => [[p.name], [p.state, p.state === "RUNNING" ? "" : "bad"], [p.description]]);
  renderLimiter(s);
}

function renderLimiter(s) {
  const lim = s.limiter;
  if (!lim) return;
  fillPairs("limiter", {
    bucket: (lim.bucket_tokens === null ? "-" : lim.bucket_tokens.toFixed(1)) + " / " + lim.burst,
    window: lim.window_used + " / " + lim.window_max,
    paused: lim.paused_for_s > 0 ? lim.paused_for_s.toFixed(1) + " s (" + lim.pause_reason + ")" : "no",
    circuit: lim.circuit, "oauth halted": lim.oauth_halted || "no" });
  const point = Object.assign({}, lim.requests_last_min);
  point["bucket tokens"] = lim.bucket_tokens || 0;
  history.times.push(s.at);
  for (const [name, v] of Object.entries(point)) (history.series[name] ||= []).push(v);
  if (history.times.length > HISTORY) {
    history.times.shift();
    for (const v of Object.values(history.series)) v.shift();
  }
  drawChart(document.getElementById("rate-chart"), history.times, history.series);
  document.getElementById("rate-chart").dataset.points = String(history.times.length);
}

async function refresh() {
  try {
    const r = await fetch("/api/status", { cache: "no-store" });
    render(await r.json());
  } catch (e) {
    document.getElementById("source-errors").textContent = "dashboard unreachable: " + e;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}
refresh();
