// A small line chart on a canvas: series of numbers sharing one time axis, no library needed.
"use strict";
const COLORS = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#9b2c2c"];

function drawChart(canvas, times, series) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 30;
  ctx.clearRect(0, 0, w, h);
  const names = Object.keys(series);
  let max = 1;
  for (const n of names) for (const v of series[n]) if (v > max) max = v;
  ctx.strokeStyle = "#ccc"; ctx.fillStyle = "#555"; ctx.font = "11px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = h - pad - (h - 2 * pad) * i / 4;
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w - 5, y); ctx.stroke();
    ctx.fillText((max * i / 4).toFixed(0), 2, y + 4);
  }
  const n = times.length;
  names.forEach((name, idx) => {
    ctx.strokeStyle = COLORS[idx % COLORS.length]; ctx.lineWidth = 2; ctx.beginPath();
    series[name].forEach((v, i) => {
      const x = pad + (w - pad - 5) * (n > 1 ? i / (n - 1) : 1);
      const y = h - pad - (h - 2 * pad) * v / max;
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    ctx.fillStyle = COLORS[idx % COLORS.length];
    ctx.fillText(name, pad + 10 + idx * 150, h - 8);
  });
}
