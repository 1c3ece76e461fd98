/**
 * Runs and versions: each published version's manifest metrics (FID, precision, recall, mean Q,
 * pass rate, λ) in one table, and for the versions picked there, their training curves side by
 * side, drawn with uPlot from the run's metrics.jsonl (GET /v1/generators/:name/:version/metrics).
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { api, describeError, type GeneratorInfo, type History, type VersionInfo } from './api.ts';
import { fmt, h } from './dom.ts';

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The metrics the table shows, wherever the manifest keeps them (`metrics`, else `training`). */
export function versionMetrics(v: VersionInfo) {
  const m = v.manifest;
  const metrics = (m?.metrics && typeof m.metrics === 'object' ? m.metrics : {}) as Record<string, unknown>;
  const training = (m?.training ?? {}) as Record<string, unknown>;
  const pick = (k: string) => num(metrics[k]) ?? num(training[k]) ?? num(m?.[k]);
  return {
    fid: pick('fid'), precision: pick('precision'), recall: pick('recall'), meanQ: pick('meanQ'), passRate: pick('passRate'),
    tau: pick('tau'), lambda: pick('lambda'), steps: num(training.steps), samples: num(metrics.samples),
  };
}

export function mountRuns(panel: HTMLElement, generators: GeneratorInfo[]): void {
  const compare = h('div', { class: 'compare', id: 'runs-compare', 'aria-live': 'polite' });
  const selected = new Map<string, HTMLElement>();
  const boxes = new Map<string, HTMLInputElement>();
  const emptyCompare = h('p', { class: 'muted', id: 'runs-compare-empty' }, 'Pick versions in the table ("Curves" or the compare boxes) to see their training curves side by side.');

  const toggle = (g: GeneratorInfo, v: VersionInfo, on: boolean) => {
    const key = `${g.name}/${v.version}`;
    const box = boxes.get(key);
    if (box) box.checked = on;
    if (on && !selected.has(key)) {
      const card = versionCard(g, v);
      selected.set(key, card);
      compare.append(card);
    } else if (!on) {
      const card = selected.get(key);
      if (card) disposeCard(card);
      card?.remove();
      selected.delete(key);
    }
    emptyCompare.hidden = selected.size > 0;
  };

  panel.append(h('div', { class: 'row', style: 'justify-content:space-between;align-items:center' },
    h('h2', {}, 'Runs and versions'),
    h('button', { type: 'button', class: 'secondary', id: 'runs-reload', onclick: () => void reload(panel) }, 'Reload versions')));
  if (!generators.length) panel.append(h('p', { class: 'empty' }, 'No generator is published yet.'));
  for (const g of generators) {
    const rows = g.versions.map((v) => {
      const m = versionMetrics(v);
      const key = `${g.name}/${v.version}`;
      const box = h('input', { type: 'checkbox', 'aria-label': `compare ${key}`, onchange: () => toggle(g, v, box.checked) });
      boxes.set(key, box);
      return h('tr', { 'data-version': v.version },
        h('td', {}, box),
        h('th', { scope: 'row' }, v.version),
        h('td', {}, v.state + (g.pinned === v.version ? ' (pinned)' : '')),
        h('td', {}, v.manifest?.createdAt ? v.manifest.createdAt.slice(0, 16).replace('T', ' ') : '—'),
        h('td', { class: 'num' }, m.steps ?? '—'),
        h('td', { class: 'num' }, fmt(m.fid, 2)),
        h('td', { class: 'num' }, fmt(m.precision, 3)),
        h('td', { class: 'num' }, fmt(m.recall, 3)),
        h('td', { class: 'num' }, fmt(m.meanQ, 3)),
        h('td', { class: 'num' }, m.passRate === undefined ? '—' : `${(m.passRate * 100).toFixed(1)}%`),
        h('td', { class: 'num' }, m.lambda ?? '—'),
        h('td', {}, h('button', { type: 'button', class: 'secondary', 'data-curves': key, onclick: () => toggle(g, v, true) }, 'Curves')));
    });
    panel.append(h('div', { class: 'card' },
      h('h3', {}, g.name, h('span', { class: 'muted' }, ` · active ${g.active ?? 'none'}${g.pinned ? ` · pinned ${g.pinned}` : ''}`)),
      h('div', { class: 'table-wrap' }, h('table', { id: `runs-${g.name}` },
        h('thead', {}, h('tr', {}, ...['compare', 'version', 'state', 'created (UTC)', 'steps', 'FID', 'precision', 'recall', 'mean Q', 'pass rate', 'λ', ''].map((t, i) =>
          h('th', { scope: 'col', class: i >= 4 && i <= 10 ? 'num' : undefined }, t)))),
        h('tbody', {}, ...rows))),
      h('p', { class: 'muted' }, 'Metrics come from each version\'s manifest, as the trainer measured them at publication (FID and precision/recall in the φ feature space against MNIST test; pass rate at the manifest\'s τ). "—": the version\'s manifest has no such metric.')));
  }
  panel.append(h('div', { class: 'card' }, h('h3', {}, 'Training curves'), emptyCompare, compare));
}

async function reload(panel: HTMLElement): Promise<void> {
  try {
    const generators = await api.generators();
    for (const card of panel.querySelectorAll('article')) disposeCard(card);
    panel.replaceChildren();
    mountRuns(panel, generators);
  } catch (e) {
    panel.prepend(h('div', { class: 'error', role: 'alert' }, describeError(e)));
  }
}

function versionCard(g: GeneratorInfo, v: VersionInfo): HTMLElement {
  const m = versionMetrics(v);
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading the training history…'));
  const card = h('article', { class: 'card', 'data-version-card': `${g.name}/${v.version}` },
    h('h3', {}, `${g.name}/${v.version}`),
    h('dl', { class: 'kv' },
      h('dt', {}, 'FID'), h('dd', {}, fmt(m.fid, 2)),
      h('dt', {}, 'precision / recall'), h('dd', {}, `${fmt(m.precision, 3)} / ${fmt(m.recall, 3)}`),
      h('dt', {}, 'mean Q / pass rate'), h('dd', {}, `${fmt(m.meanQ, 3)} / ${m.passRate === undefined ? '—' : `${(m.passRate * 100).toFixed(1)}%`}`),
      h('dt', {}, 'λ'), h('dd', {}, m.lambda ?? '—'),
      h('dt', {}, 'architecture'), h('dd', {}, v.manifest?.architecture ?? '—')),
    body);
  api.history(g.name, v.version).then((hist) => renderHistory(body, hist), (e: unknown) => {
    body.replaceChildren(h('div', { class: 'error', role: 'alert' }, describeError(e)));
  });
  return card;
}

/**
 * Charts of the same kind share their axes across the versions compared, so that side by side the
 * same height means the same loss, Q or FID.
 */
interface SharedPlot { plot: uPlot; x: [number, number]; y: [number, number] }
const sharedAxes = new Map<string, Set<SharedPlot>>();
const cardPlots = new WeakMap<HTMLElement, Array<[string, SharedPlot]>>();

function extent(values: Array<number | null | undefined>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (typeof v === 'number' && Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  return [lo, hi];
}

function alignAxes(title: string): void {
  const plots = [...(sharedAxes.get(title) ?? [])];
  if (!plots.length) return;
  const [x0, x1] = extent(plots.flatMap((p) => p.x));
  const [y0, y1] = extent(plots.flatMap((p) => p.y));
  if (!Number.isFinite(x0) || !Number.isFinite(y0)) return;
  const pad = (y1 - y0) * 0.05 || Math.abs(y0) * 0.05 || 1;
  for (const p of plots) {
    p.plot.batch(() => {
      p.plot.setScale('x', { min: x0, max: x1 > x0 ? x1 : x0 + 1 });
      p.plot.setScale('y', { min: y0 - pad, max: y1 + pad });
    });
  }
}

function disposeCard(card: HTMLElement): void {
  for (const [title, entry] of cardPlots.get(card) ?? []) {
    sharedAxes.get(title)?.delete(entry);
    entry.plot.destroy();
    alignAxes(title);
  }
  cardPlots.delete(card);
}

function renderHistory(body: HTMLElement, hist: History): void {
  const steps = hist.lines.filter((l) => l.type === undefined && num(l.step) !== undefined);
  const fids = hist.lines.filter((l) => (l.type === 'fid' || l.type === 'eval') && num(l.step) !== undefined && num(l.fid) !== undefined);
  if (!hist.available || (!steps.length && !fids.length)) {
    body.replaceChildren(h('p', { class: 'empty', 'data-empty': 'history' },
      hist.available ? 'This version\'s metrics.jsonl has no step lines to draw.'
        : 'No training history: this version\'s folder has no metrics.jsonl (the trainer copies it there when it publishes; older and bootstrap versions have none).'));
    return;
  }
  body.replaceChildren();
  const col = (rows: Array<Record<string, unknown>>, k: string) => rows.map((l) => num(l[k]) ?? null);
  const x = col(steps, 'step') as number[];
  const charts: Array<[string, uPlot.AlignedData, uPlot.Series[]]> = [];
  if (steps.length) {
    charts.push(['Losses', [x, col(steps, 'lossD'), col(steps, 'lossG')], [{ label: 'lossD', stroke: '#d62728' }, { label: 'lossG', stroke: '#1f77b4' }]]);
    charts.push(['Mean Q of the training batches', [x, col(steps, 'q')], [{ label: 'Q', stroke: '#2ca02c' }]]);
  }
  if (fids.length) {
    const fx = col(fids, 'step') as number[];
    const perEpoch = fids.map((l) => (l.type === 'fid' ? num(l.fid)! : null));
    const final = fids.map((l) => (l.type === 'eval' ? num(l.fid)! : null));
    charts.push(['FID over steps', [fx, perEpoch, final], [
      { label: 'FID per epoch', stroke: '#9467bd', points: { show: true, size: 6 } },
      { label: 'final FID', stroke: '#000', points: { show: true, size: 9 }, spanGaps: false },
    ]]);
  }
  for (const [title, data, series] of charts) {
    const holder = h('div', { class: 'chart', role: 'img', 'aria-label': `${title}: ${series.map((s) => s.label).join(', ')} over training steps` }, h('div', { class: 'muted' }, title));
    body.append(holder);
    const width = Math.max(260, body.clientWidth || 320);
    const plot = new uPlot({
      width, height: 180,
      scales: { x: { time: false } },
      axes: [{ label: 'step' }, {}],
      series: [{ label: 'step' }, ...series.map((s) => ({ width: 1.5, spanGaps: true, ...s }))],
      legend: { live: true },
      // Hovering a step in one version's chart shows the same step in the others being compared.
      cursor: { sync: { key: `qgate-${title}` } },
    }, data, holder);
    new ResizeObserver(() => plot.setSize({ width: Math.max(260, body.clientWidth), height: 180 })).observe(body);
    const entry: SharedPlot = { plot, x: extent(data[0] as number[]), y: extent(data.slice(1).flat() as Array<number | null>) };
    if (!sharedAxes.has(title)) sharedAxes.set(title, new Set());
    sharedAxes.get(title)!.add(entry);
    const card = body.closest('article');
    if (card) cardPlots.set(card, [...(cardPlots.get(card) ?? []), [title, entry]]);
    alignAxes(title);
  }
}
