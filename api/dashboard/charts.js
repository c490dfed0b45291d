// Charts as inline SVG: stacked bars (cost per day by a dimension) and line plots (latency, calls per minute).
const SVG = "http://www.w3.org/2000/svg";
export const PALETTE = ["#2f5fd0", "#e07b39", "#3a9d5d", "#c2413b", "#8a5cc2", "#c79a1c", "#2b9aa8", "#d0508f",
  "#6b7a8f", "#7fa83a"];

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  for (const child of children) el.append(child);
  return el;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * step).find((m) => m >= value);
}

function axis(width, height, pad, max, format) {
  const group = s("g", { class: "axis" });
  for (let i = 0; i <= 4; i++) {
    const y = pad.top + (height - pad.top - pad.bottom) * (1 - i / 4);
    group.append(s("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y }));
    const label = s("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end" });
    label.textContent = format((max * i) / 4);
    group.append(label);
  }
  return group;
}

function legend(names, colors) {
  const list = document.createElement("ul");
  list.className = "legend";
  names.forEach((name, i) => {
    const item = document.createElement("li");
    const swatch = document.createElement("i");
    swatch.style.background = colors[i % colors.length];
    item.append(swatch, name || "(none)");
    list.append(item);
  });
  return list;
}

/**
 * bars: [{label, parts: {series: value}}]; one stacked bar per label, series in a stable colour order.
 * Returns a <figure> with the SVG and a legend; each segment has a <title> with its value.
 */
export function stackedBars(bars, { format = String, height = 220 } = {}) {
  const names = [...new Set(bars.flatMap((bar) => Object.keys(bar.parts)))].sort();
  const width = Math.max(320, 48 * bars.length + 80);
  const pad = { top: 10, right: 10, bottom: 28, left: 64 };
  const max = niceMax(Math.max(0, ...bars.map((bar) => Object.values(bar.parts).reduce((a, b) => a + b, 0))));
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  svg.append(axis(width, height, pad, max, format));
  const slot = (width - pad.left - pad.right) / Math.max(1, bars.length);
  const scale = (height - pad.top - pad.bottom) / max;
  bars.forEach((bar, i) => {
    let y = height - pad.bottom;
    const x = pad.left + i * slot + slot * 0.15;
    names.forEach((name, n) => {
      const value = bar.parts[name] || 0;
      if (value <= 0) return;
      const size = value * scale;
      y -= size;
      const rect = s("rect", { x, y, width: slot * 0.7, height: Math.max(size, 0.5), fill: PALETTE[n % PALETTE.length] });
      rect.append(s("title", {}, `${bar.label} · ${name || "(none)"}: ${format(value)}`));
      svg.append(rect);
    });
    const label = s("text", { x: x + slot * 0.35, y: height - 10, "text-anchor": "middle", class: "tick" });
    label.textContent = bar.label;
    svg.append(label);
  });
  const figure = document.createElement("figure");
  figure.append(svg, legend(names, PALETTE));
  return figure;
}

/** series: [{name, points: [[x, y|null], ...]}] over the same x range (unix seconds); gaps where y is null. */
export function linePlot(series, { format = String, height = 180, xFormat } = {}) {
  const xs = series.flatMap((line) => line.points.map(([x]) => x));
  const ys = series.flatMap((line) => line.points.map(([, y]) => y)).filter((y) => y !== null);
  const width = 560;
  const pad = { top: 10, right: 12, bottom: 24, left: 56 };
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const max = niceMax(Math.max(0, ...ys));
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  svg.append(axis(width, height, pad, max, format));
  const px = (x) => pad.left + (x1 > x0 ? ((x - x0) / (x1 - x0)) : 0.5) * (width - pad.left - pad.right);
  const py = (y) => height - pad.bottom - (y / max) * (height - pad.top - pad.bottom);
  series.forEach((line, n) => {
    let path = "";
    let pen = "M";
    for (const [x, y] of line.points) {
      if (y === null) { pen = "M"; continue; }
      path += `${pen}${px(x).toFixed(1)},${py(y).toFixed(1)} `;
      pen = "L";
      const dot = s("circle", { cx: px(x), cy: py(y), r: 2.2, fill: PALETTE[n % PALETTE.length] });
      dot.append(s("title", {}, `${line.name}: ${format(y)}${xFormat ? " at " + xFormat(x) : ""}`));
      svg.append(dot);
    }
    svg.append(s("path", { d: path, fill: "none", stroke: PALETTE[n % PALETTE.length], "stroke-width": 1.8 }));
  });
  if (xs.length && xFormat) {
    for (const [x, anchor] of [[x0, "start"], [x1, "end"]]) {
      const label = s("text", { x: px(x), y: height - 6, "text-anchor": anchor, class: "tick" });
      label.textContent = xFormat(x);
      svg.append(label);
    }
  }
  const figure = document.createElement("figure");
  figure.append(svg, legend(series.map((line) => line.name), PALETTE));
  return figure;
}
