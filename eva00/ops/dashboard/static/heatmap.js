// The heat map family x project (from /api/status "heat") and its drill-down (/api/pair).
"use strict";
let selected = null;  // [family, project] of the open detail, refreshed with the page

function heatColour(cell) {
  if (cell.intervals_ago === null) return "";
  const x = Math.min(cell.intervals_ago, 5) / 5;  // 0 fresh .. 1 critical (5 intervals)
  return "hsl(" + Math.round(120 * (1 - x)) + "," + Math.round(60 + 20 * x) + "%," + Math.round(75 - 10 * x) + "%)";
}

function renderHeatmap(cells) {
  const families = [...new Set(cells.map(c => c.family))];
  const projects = [...new Set(cells.map(c => c.project_id || 0))].sort((a, b) => a - b);
  const head = el("tr");
  head.appendChild(el("th", "family"));
  for (const p of projects) head.appendChild(el("th", p || "company", "proj"));
  document.querySelector("#heatmap thead").replaceChildren(head);
  const byKey = new Map(cells.map(c => [c.family + ":" + (c.project_id || 0), c]));
  document.querySelector("#heatmap tbody").replaceChildren(...families.map(family => {
    const tr = el("tr");
    tr.appendChild(el("th", family));
    for (const p of projects) {
      const c = byKey.get(family + ":" + p);
      const td = el("td", "", c ? "cell level-" + c.level : "cell empty");
      if (c) {
        td.style.background = heatColour(c);
        Object.assign(td.dataset, { family, project: String(p), level: c.level,
                                    intervals: c.intervals_ago === null ? "" : c.intervals_ago.toFixed(2) });
        td.title = family + " @ " + (p || "company") + ": " + c.kind + ", " +
          (c.intervals_ago === null ? "never polled" : c.intervals_ago.toFixed(1) + " intervals ago");
        td.onclick = () => { selected = [family, p]; showPair(); };
      }
      tr.appendChild(td);
    }
    return tr;
  }));
  if (selected) showPair();
}

function detailTable(title, cols, rows) {
  const box = el("div");
  box.appendChild(el("h3", title));
  const table = el("table");
  const head = el("tr");
  for (const c of cols) head.appendChild(el("th", c));
  table.appendChild(head);
  for (const r of rows) {
    const tr = el("tr");
    for (const c of cols) {
      const v = r[c];
      tr.appendChild(el("td", v === null || v === undefined ? "-" : typeof v === "object" ? JSON.stringify(v)
        : typeof v === "number" && !Number.isInteger(v) ? v.toFixed(1) : String(v).replace("T", " ").slice(0, 60)));
    }
    table.appendChild(tr);
  }
  if (!rows.length) box.appendChild(el("p", "none", "muted")); else box.appendChild(table);
  return box;
}

async function showPair() {
  const [family, project] = selected;
  const box = document.getElementById("pair-detail");
  try {
    const r = await fetch("/api/pair?family=" + encodeURIComponent(family) + "&project=" + project,
                          { cache: "no-store" });
    const d = await r.json();
    if (!selected || selected[0] !== family || selected[1] !== project) return;
    const close = el("button", "close", "close");
    close.onclick = () => { selected = null; box.hidden = true; };
    box.replaceChildren(el("h3", family + " @ " + (project ? "project " + project : "company") +
                           (d.error ? " — " + d.error : "")), close,
      detailTable("Kinds and next planned poll", ["kind", "level", "intervals_ago", "last_success_at",
                                                  "interval_s", "next_poll_at", "overdue"], d.kinds || []),
      detailTable("Recent polls", ["kind", "mode", "pages", "items", "complete", "started_at", "finished_at",
                                   "run_id"], d.polls || []),
      detailTable("Recent errors", ["at", "kind", "action", "result", "detail"], d.errors || []));
    box.dataset.pair = family + ":" + project;
    box.hidden = false;
  } catch (e) {
    box.replaceChildren(el("p", "detail unavailable: " + e, "bad"));
    box.hidden = false;
  }
}
