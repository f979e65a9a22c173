/**
 * A small hand-written SVG line chart (no dependency): log or linear axes, series of points with
 * optional min–max bars, a second marker shape for extra points, value labels, legend, title.
 * Only what the bench's two figures need; the output is plain SVG 1.1 that any renderer reads.
 */

export type Scale = 'linear' | 'log';

export interface Point {
  x: number;
  y: number;
  /** Spread over runs, drawn as a vertical bar when it differs from y. */
  min?: number;
  max?: number;
  /** Text drawn beside the point (e.g. its value). */
  label?: string;
}

export interface Series {
  name: string;
  color: string;
  /** Joined by a line, drawn as filled circles. */
  points: Point[];
  /** Drawn as hollow diamonds, not joined (e.g. a variant of the last point). */
  extra?: Point[];
}

export interface ChartSpec {
  title: string;
  /** Lines under the title (run identity); a line starting with '!' is drawn as a warning. */
  subtitle: string[];
  xLabel: string;
  yLabel: string;
  xScale: Scale;
  yScale: Scale;
  /** Where the x ticks go (the measured NIC counts); labels are the numbers themselves. */
  xTicks: number[];
  /** Formats a y tick value (unit included). */
  yFormat: (v: number) => string;
  series: Series[];
  /** Legend entries after the series (e.g. what the diamond means). */
  legendNotes: { marker: 'diamond' | 'bar' | 'none'; text: string }[];
  /** Small print at the bottom (points not plotted, and why). */
  footnotes: string[];
}

const W = 760;
const H = 460;
const M = { left: 78, right: 230, bottom: 62 };
const FONT = 'font-family="DejaVu Sans, Verdana, sans-serif"';

/** Text for SVG: the five XML specials escaped. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const n = (v: number) => String(Math.round(v * 10) / 10);

/** A value → pixel mapping over [lo, hi] onto [a, b]. */
function axis(scale: Scale, lo: number, hi: number, a: number, b: number): (v: number) => number {
  if (scale === 'log') {
    const l0 = Math.log10(lo);
    const l1 = Math.log10(hi);
    return (v) => a + ((Math.log10(v) - l0) / (l1 - l0)) * (b - a);
  }
  return (v) => a + ((v - lo) / (hi - lo)) * (b - a);
}

/** The y range: whole decades around the data (log), or 0 to a round number above it (linear). */
export function yRange(scale: Scale, values: number[]): [number, number] {
  const pos = values.filter((v) => v > 0);
  if (!pos.length) return scale === 'log' ? [1, 10] : [0, 1];
  const lo = Math.min(...pos);
  const hi = Math.max(...pos);
  if (scale === 'log') {
    const a = 10 ** Math.floor(Math.log10(lo));
    let b = 10 ** Math.ceil(Math.log10(hi));
    if (b === a) b = a * 10;
    return [a, b];
  }
  const step = 10 ** Math.floor(Math.log10(hi));
  return [0, Math.ceil((hi * 1.05) / step) * step];
}

/** Tick values: 1, 2, 5 × each decade (log) or five even steps (linear). */
export function yTicks(scale: Scale, [lo, hi]: [number, number]): number[] {
  if (scale === 'linear') return [0, 1, 2, 3, 4, 5].map((i) => lo + ((hi - lo) * i) / 5);
  const out: number[] = [];
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    for (const m of [1, 2, 5]) {
      const v = Math.round(d * m * 1e6) / 1e6;
      if (v >= lo && v <= hi * 1.0001) out.push(v);
    }
  }
  return out;
}

const diamond = (x: number, y: number, r: number, color: string) =>
  `<path d="M${n(x)} ${n(y - r)} L${n(x + r)} ${n(y)} L${n(x)} ${n(y + r)} L${n(x - r)} ${n(y)} Z" fill="white" stroke="${color}" stroke-width="2"/>`;

export function renderChart(spec: ChartSpec): string {
  const top = 56 + 16 * spec.subtitle.length;
  const px0 = M.left;
  const px1 = W - M.right;
  const py0 = H - M.bottom - 12 * spec.footnotes.length;
  const py1 = top;
  const all = spec.series.flatMap((s) => [...s.points, ...(s.extra ?? [])]);
  const yr = yRange(spec.yScale, all.flatMap((p) => [p.y, p.min ?? p.y, p.max ?? p.y]));
  const xs = [...spec.xTicks, ...all.map((p) => p.x)];
  const xlo = Math.min(...xs);
  const xhi = Math.max(...xs);
  // Half a step of room either side so the end points and their bars are not on the frame.
  const pad = spec.xScale === 'log' ? Math.sqrt(xhi / xlo) ** 0.15 : (xhi - xlo) * 0.06;
  const X = spec.xScale === 'log' ? axis('log', xlo / pad, xhi * pad, px0, px1) : axis('linear', xlo - pad, xhi + pad, px0, px1);
  const Y = axis(spec.yScale, yr[0], yr[1], py0, py1);
  const o: string[] = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT} font-size="12">`);
  o.push(`<title>${esc(spec.title)}</title>`);
  o.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  o.push(`<text x="${px0}" y="26" font-size="17" font-weight="bold">${esc(spec.title)}</text>`);
  spec.subtitle.forEach((line, i) => {
    const warn = line.startsWith('!');
    o.push(`<text x="${px0}" y="${46 + 16 * i}" font-size="12" fill="${warn ? '#b00020' : '#444'}"${warn ? ' font-weight="bold"' : ''}>${esc(warn ? line.slice(1) : line)}</text>`);
  });
  // grid and y ticks
  for (const t of yTicks(spec.yScale, yr)) {
    const y = Y(t);
    o.push(`<line x1="${px0}" y1="${n(y)}" x2="${px1}" y2="${n(y)}" stroke="#e4e4e4"/>`);
    o.push(`<text x="${px0 - 6}" y="${n(y + 4)}" text-anchor="end" fill="#333">${esc(spec.yFormat(t))}</text>`);
  }
  for (const t of spec.xTicks) {
    const x = X(t);
    o.push(`<line x1="${n(x)}" y1="${py0}" x2="${n(x)}" y2="${py1}" stroke="#f0f0f0"/>`);
    o.push(`<line x1="${n(x)}" y1="${py0}" x2="${n(x)}" y2="${py0 + 5}" stroke="#333"/>`);
    o.push(`<text x="${n(x)}" y="${py0 + 19}" text-anchor="middle" fill="#333">${t}</text>`);
  }
  o.push(`<rect x="${px0}" y="${py1}" width="${px1 - px0}" height="${py0 - py1}" fill="none" stroke="#333"/>`);
  o.push(`<text x="${(px0 + px1) / 2}" y="${py0 + 40}" text-anchor="middle" font-size="13">${esc(spec.xLabel)}</text>`);
  o.push(`<text transform="translate(18 ${n((py0 + py1) / 2)}) rotate(-90)" text-anchor="middle" font-size="13">${esc(spec.yLabel)}</text>`);
  // series: bars, line, markers, labels
  // Earlier series are drawn wider, so a later one lying on the same values (e.g. the same request
  // count) shows as a band inside it instead of hiding it.
  const k = spec.series.length;
  for (const [i, s] of spec.series.entries()) {
    const wider = k - 1 - i;
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    for (const p of [...pts, ...(s.extra ?? [])]) {
      if (p.min !== undefined && p.max !== undefined && p.max > p.min) {
        const x = X(p.x);
        o.push(`<line x1="${n(x)}" y1="${n(Y(p.min))}" x2="${n(x)}" y2="${n(Y(p.max))}" stroke="${s.color}" stroke-width="1.5"/>`);
        for (const v of [p.min, p.max]) o.push(`<line x1="${n(x - 4)}" y1="${n(Y(v))}" x2="${n(x + 4)}" y2="${n(Y(v))}" stroke="${s.color}" stroke-width="1.5"/>`);
      }
    }
    if (pts.length > 1) o.push(`<polyline points="${pts.map((p) => `${n(X(p.x))},${n(Y(p.y))}`).join(' ')}" fill="none" stroke="${s.color}" stroke-width="${2.5 + 2.5 * wider}"/>`);
    for (const p of pts) o.push(`<circle cx="${n(X(p.x))}" cy="${n(Y(p.y))}" r="${4.5 + 1.5 * wider}" fill="${s.color}"/>`);
    for (const p of s.extra ?? []) o.push(diamond(X(p.x), Y(p.y), 6.5, s.color));
    // The lines rise left to right, so below right of a point is free of its own line; at the
    // last x, above left (its right side belongs to the diamonds' labels: they share that x).
    for (const p of pts) {
      if (!p.label) continue;
      const last = p.x === xhi;
      o.push(`<text x="${n(X(p.x) + (last ? -9 : 8))}" y="${n(Y(p.y) + (last ? -7 : 15))}"${last ? ' text-anchor="end"' : ''} font-size="11" fill="${s.color}">${esc(p.label)}</text>`);
    }
    for (const p of s.extra ?? []) if (p.label) o.push(`<text x="${n(X(p.x) + 11)}" y="${n(Y(p.y) + 4)}" font-size="11" fill="${s.color}">${esc(p.label)}</text>`);
  }
  // legend, right of the plot
  const lx = px1 + 24;
  let ly = py1 + 8;
  for (const s of spec.series) {
    const empty = !s.points.length && !(s.extra ?? []).length;
    o.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 26}" y2="${ly}" stroke="${s.color}" stroke-width="2.5"${empty ? ' stroke-dasharray="3 3"' : ''}/>`);
    if (!empty) o.push(`<circle cx="${lx + 13}" cy="${ly}" r="4.5" fill="${s.color}"/>`);
    o.push(`<text x="${lx + 34}" y="${ly + 4}" font-size="13">${esc(s.name)}${empty ? ' (not measured)' : ''}</text>`);
    ly += 22;
  }
  ly += 6;
  for (const note of spec.legendNotes) {
    if (note.marker === 'diamond') o.push(diamond(lx + 13, ly, 6, '#555'));
    if (note.marker === 'bar') o.push(`<line x1="${lx + 13}" y1="${ly - 7}" x2="${lx + 13}" y2="${ly + 7}" stroke="#555" stroke-width="1.5"/><line x1="${lx + 9}" y1="${ly - 7}" x2="${lx + 17}" y2="${ly - 7}" stroke="#555" stroke-width="1.5"/><line x1="${lx + 9}" y1="${ly + 7}" x2="${lx + 17}" y2="${ly + 7}" stroke="#555" stroke-width="1.5"/>`);
    // legend notes wrap at ~24 characters (the legend column is 200 px wide)
    const words = note.text.split(' ');
    const lines: string[] = [];
    for (const w of words) {
      const last = lines[lines.length - 1];
      if (last !== undefined && (last + ' ' + w).length <= 24) lines[lines.length - 1] = `${last} ${w}`;
      else lines.push(w);
    }
    lines.forEach((l, i) => o.push(`<text x="${lx + (note.marker === 'none' ? 0 : 34)}" y="${ly + 4 + 14 * i}" font-size="11" fill="#333">${esc(l)}</text>`));
    ly += 14 * lines.length + 10;
  }
  spec.footnotes.forEach((f, i) => o.push(`<text x="${px0}" y="${H - 10 - 12 * (spec.footnotes.length - 1 - i)}" font-size="10" fill="#666">${esc(f)}</text>`));
  o.push('</svg>');
  return o.join('\n') + '\n';
}
