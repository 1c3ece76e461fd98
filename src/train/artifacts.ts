/**
 * What a training run leaves for people to look at: sample grids (PNG), their animation (GIF) and
 * a plot of the curves (PNG).
 *
 * The plot is an SVG written here and rasterized by sharp (librsvg ships in sharp's prebuilt
 * libvips; fonts come from fontconfig). Charting libraries were weighed and left out: Chart.js
 * needs a canvas (node-canvas is a native build), Vega renders SVG headless but brings megabytes
 * of dependencies for three line charts, and the small SVG chart packages are unmaintained. A line
 * chart is a polyline and a few labels.
 */
import { writeFile } from 'node:fs/promises';
// gifenc's Node entry is a CommonJS bundle whose named exports Node cannot detect.
import gifenc from 'gifenc';
import sharp from 'sharp';
import { encodePng } from '../data/images.ts';

const SIDE = 28;
const PAD = 2;
const SCALE = 2;

/** A rows×cols grid of [0,1] 28×28 images as 8-bit gray pixels, upscaled ×2 (nearest) for viewing. */
export function gridPixels(images: Float32Array, rows = 4, cols = 4): { pixels: Uint8Array; width: number; height: number } {
  const w0 = cols * SIDE + (cols + 1) * PAD;
  const h0 = rows * SIDE + (rows + 1) * PAD;
  const small = new Uint8Array(w0 * h0).fill(64);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      if ((i + 1) * SIDE * SIDE > images.length) continue;
      for (let y = 0; y < SIDE; y++) {
        for (let x = 0; x < SIDE; x++) {
          const v = images[i * SIDE * SIDE + y * SIDE + x]!;
          small[(PAD + r * (SIDE + PAD) + y) * w0 + PAD + c * (SIDE + PAD) + x] = Math.round(Math.min(1, Math.max(0, v)) * 255);
        }
      }
    }
  }
  const width = w0 * SCALE;
  const height = h0 * SCALE;
  const pixels = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) pixels[y * width + x] = small[Math.floor(y / SCALE) * w0 + Math.floor(x / SCALE)]!;
  return { pixels, width, height };
}

export async function writeGridPng(file: string, grid: { pixels: Uint8Array; width: number; height: number }): Promise<void> {
  await writeFile(file, await encodePng(grid.pixels, grid.height, grid.width, 1));
}

/** An animated, looping GIF of same-sized gray frames (a 256-level gray palette: no quantization needed). */
export function encodeGif(frames: Uint8Array[], width: number, height: number, delayMs = 500): Uint8Array {
  const palette = Array.from({ length: 256 }, (_, i) => [i, i, i]);
  const gif = gifenc.GIFEncoder();
  frames.forEach((f, i) => gif.writeFrame(f, width, height, { palette, delay: i === frames.length - 1 ? delayMs * 4 : delayMs, repeat: 0 }));
  gif.finish();
  return gif.bytes();
}

export interface Series {
  label: string;
  color: string;
  points: Array<[number, number]>;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

function niceNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(2);
}

/** One panel: axes with min/max ticks, one polyline per series (a marker per point when a series has few). */
function panel(title: string, series: Series[], x0: number, y0: number, w: number, h: number, xLabel: string): string {
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const out: string[] = [`<text x="${x0}" y="${y0 - 8}" font-family="DejaVu Sans, sans-serif" font-size="13" font-weight="bold">${escapeXml(title)}</text>`];
  out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#999"/>`);
  if (all.length === 0) {
    out.push(`<text x="${x0 + w / 2}" y="${y0 + h / 2}" text-anchor="middle" font-family="DejaVu Sans, sans-serif" font-size="12" fill="#777">no data</text>`);
    return out.join('\n');
  }
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const [xMin, xMax] = [Math.min(...xs), Math.max(...xs)];
  let [yMin, yMax] = [Math.min(...ys), Math.max(...ys)];
  if (yMax === yMin) [yMin, yMax] = [yMin - 1, yMax + 1];
  const sx = (x: number) => x0 + (xMax === xMin ? w / 2 : ((x - xMin) / (xMax - xMin)) * w);
  const sy = (y: number) => y0 + h - ((y - yMin) / (yMax - yMin)) * h;
  const font = 'font-family="DejaVu Sans, sans-serif" font-size="11" fill="#444"';
  out.push(`<text x="${x0 - 4}" y="${y0 + 10}" text-anchor="end" ${font}>${niceNumber(yMax)}</text>`);
  out.push(`<text x="${x0 - 4}" y="${y0 + h}" text-anchor="end" ${font}>${niceNumber(yMin)}</text>`);
  out.push(`<text x="${x0}" y="${y0 + h + 14}" ${font}>${niceNumber(xMin)}</text>`);
  out.push(`<text x="${x0 + w}" y="${y0 + h + 14}" text-anchor="end" ${font}>${niceNumber(xMax)} ${escapeXml(xLabel)}</text>`);
  series.forEach((s, i) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
    if (pts.length <= 20) for (const [x, y] of pts) out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
    out.push(`<text x="${x0 + w - 6}" y="${y0 + 16 + 14 * i}" text-anchor="end" font-family="DejaVu Sans, sans-serif" font-size="12" fill="${s.color}">${escapeXml(s.label)}</text>`);
  });
  return out.join('\n');
}

/** Panels stacked vertically, as an SVG document. */
export function plotSvg(title: string, panels: Array<{ title: string; series: Series[] }>, xLabel = 'step'): string {
  const width = 720;
  const ph = 170;
  const height = 40 + panels.length * (ph + 50);
  const body = panels.map((p, i) => panel(p.title, p.series, 70, 60 + i * (ph + 50), width - 100, ph, xLabel)).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
<rect width="100%" height="100%" fill="white"/>
<text x="${width / 2}" y="22" text-anchor="middle" font-family="DejaVu Sans, sans-serif" font-size="15">${escapeXml(title)}</text>
${body}
</svg>`;
}

export async function writeSvgAsPng(file: string, svg: string): Promise<void> {
  await sharp(Buffer.from(svg)).png().toFile(file);
}
