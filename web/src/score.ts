/**
 * Score: drop or choose an image; see it as the model sees it (28×28 grey, scaled up without
 * smoothing), its Q, the verdict, and the two components raw and normalized. The τ slider re-gates
 * the score in the browser (pass when Q < τ), without another upload.
 */
import { describeError, scoreImage, type Score, type Status } from './api.ts';
import { fmt, h } from './dom.ts';

const SCALE = 8;

export function mountScore(panel: HTMLElement, status: Status | undefined): void {
  const input = status?.models.extractor?.input ?? { height: 28, width: 28, channels: 1 };
  const gate = status?.gate;
  const defaultTau = gate?.tau ?? 0.3;
  const limit = status?.limits.maxUploadBytes;

  const file = h('input', { type: 'file', id: 'score-file', accept: 'image/*', 'aria-describedby': 'score-help' });
  const drop = h('div', { class: 'drop', id: 'score-drop' },
    h('p', {}, h('label', { for: 'score-file' }, 'Choose an image'), ' or drop one here'),
    file,
    h('p', { class: 'muted', id: 'score-help' }, `PNG, JPEG, WebP, GIF, TIFF or AVIF${limit ? `, up to ${(limit / 1048576).toFixed(limit < 1048576 ? 2 : 0)} MiB` : ''}. It is scored by the service; nothing is kept.`));
  const error = h('div', { class: 'error', role: 'alert', id: 'score-error' });
  const canvas = h('canvas', { class: 'pix', id: 'score-canvas', width: input.width, height: input.height, style: `width:${input.width * SCALE}px;height:${input.height * SCALE}px;max-width:100%;aspect-ratio:${input.width}/${input.height}`, role: 'img', 'aria-label': 'The image at the size the model sees' });
  const caption = h('figcaption', {}, `As the model sees it: ${input.width}×${input.height}${input.channels === 1 ? ' grey' : ''}, scaled up ${SCALE}× (resampled in the browser; the service uses lanczos3).`);
  const preview = h('div', { class: 'preview', hidden: true, id: 'score-preview' }, h('figure', {}, canvas, caption));

  const tau = h('input', { type: 'range', id: 'score-tau', min: '0.01', max: '1', step: '0.01', value: String(defaultTau), 'aria-describedby': 'score-tau-help' });
  const tauOut = h('output', { for: 'score-tau', id: 'score-tau-value', class: 'num' }, defaultTau.toFixed(2));
  const result = h('div', { id: 'score-result', 'aria-live': 'polite' });
  const tauRow = h('div', { class: 'tau' },
    h('label', { for: 'score-tau' }, 'τ (gate)'), tau, tauOut,
    h('button', { type: 'button', class: 'secondary', onclick: () => { tau.value = String(defaultTau); update(); } }, `Reset to ${defaultTau}`),
    h('span', { class: 'muted', id: 'score-tau-help' }, 'Moving τ re-gates the last score here, with no new upload.'));

  panel.append(
    h('h2', {}, 'Score an image'),
    h('div', { class: 'card' }, h('div', { class: 'row' }, drop, preview), error),
    h('div', { class: 'card' }, result, tauRow),
  );
  result.append(h('p', { class: 'muted' }, 'No image scored yet.'));

  let last: Score | undefined;
  let lastName = '';

  const update = () => {
    const t = Number(tau.value);
    tauOut.textContent = t.toFixed(2);
    if (!last) return;
    renderResult(result, last, t, lastName, gate);
  };
  tau.addEventListener('input', update);

  const take = async (f: File | undefined) => {
    if (!f) return;
    error.textContent = '';
    result.setAttribute('aria-busy', 'true');
    void drawModelView(canvas, f).then((ok) => { preview.hidden = !ok; });
    try {
      last = await scoreImage(f, f.name);
      lastName = f.name;
      update();
    } catch (e) {
      last = undefined;
      preview.hidden = true;
      error.textContent = describeError(e);
      result.replaceChildren(h('p', { class: 'muted' }, `${f.name} was not scored.`));
    } finally {
      result.removeAttribute('aria-busy');
    }
  };
  file.addEventListener('change', () => void take(file.files?.[0]));
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    void take(e.dataTransfer?.files[0]);
  });
}

function renderResult(el: HTMLElement, s: Score, tau: number, name: string, gate: Status['gate'] | undefined): void {
  const pass = s.q < tau;
  const alpha = gate?.alpha ?? 0.5;
  const beta = gate?.beta ?? 0.5;
  const cal = gate?.calibration;
  el.replaceChildren(
    h('div', { class: 'row', style: 'align-items:center' },
      h('div', {}, h('div', { class: 'muted' }, 'Q'), h('div', { class: 'q', id: 'score-q' }, s.q.toFixed(3))),
      h('div', {},
        h('span', { class: `verdict ${pass ? 'pass' : 'fail'}`, id: 'score-verdict' }, pass ? '✓ PASS' : '✕ FAIL'),
        h('div', { class: 'muted' }, `Q ${s.q.toFixed(3)} ${pass ? '<' : '≥'} τ ${tau.toFixed(2)}`)),
      h('div', { class: 'muted' }, `${name} · ${s.format.toUpperCase()} ${s.width}×${s.height} · realism ${fmt(s.realism, 2)}`)),
    h('div', { class: 'bars', role: 'list', 'aria-label': 'Components of Q' },
      ...bar('Q = α·noise + β·distance', s.q, 1, s.q.toFixed(3), [tau], `τ marker at ${tau.toFixed(2)}`),
      ...bar('noise (σ), raw', s.noise, rawMax(s.noise, cal?.noise), fmt(s.noise, 4), cal ? [cal.noise.lo, cal.noise.hi] : [], cal ? `calibration lo ${fmt(cal.noise.lo, 4)}, hi ${fmt(cal.noise.hi, 4)}` : ''),
      ...bar(`noise, normalized (α = ${alpha})`, s.noiseNorm, 1, s.noiseNorm.toFixed(3)),
      ...bar('distance to real digits, raw', s.distance, rawMax(s.distance, cal?.distance), fmt(s.distance, 3), cal ? [cal.distance.lo, cal.distance.hi] : [], cal ? `calibration lo ${fmt(cal.distance.lo, 3)}, hi ${fmt(cal.distance.hi, 3)}` : ''),
      ...bar(`distance, normalized (β = ${beta})`, s.distanceNorm, 1, s.distanceNorm.toFixed(3)),
    ),
    h('p', { class: 'muted' }, 'Raw bars mark the calibration bounds lo (a typical real digit) and hi (uniform noise); normalized = clamp((raw − lo)/(hi − lo), 0, 1).'),
  );
}

function rawMax(v: number, b: { lo: number; hi: number } | undefined): number {
  return Math.max(v, (b?.hi ?? v) * 1.25, 1e-9);
}

function bar(label: string, value: number, max: number, text: string, marks: number[] = [], markText = ''): HTMLElement[] {
  const pct = (x: number) => `${Math.max(0, Math.min(100, (x / max) * 100)).toFixed(1)}%`;
  const b = h('div', { class: 'bar', role: 'meter', 'aria-label': label, 'aria-valuemin': '0', 'aria-valuemax': String(max), 'aria-valuenow': String(value), title: markText || undefined },
    h('span', { style: `width:${pct(value)}` }),
    ...marks.map((m) => h('i', { style: `left:${pct(m)}` })));
  return [h('span', { role: 'listitem' }, label), b, h('span', { class: 'num' }, text)];
}

/** Draws the image as the service converts it: alpha onto black, contain-fit, luminance. */
async function drawModelView(canvas: HTMLCanvasElement, file: Blob): Promise<boolean> {
  let bmp: ImageBitmap;
  try {
    bmp = await createImageBitmap(file);
  } catch {
    return false; // the service says why (not an image, unsupported format, …)
  }
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) return false;
  const W = canvas.width;
  const H = canvas.height;
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, W, H);
  const s = Math.min(W / bmp.width, H / bmp.height);
  const w = bmp.width * s;
  const hh = bmp.height * s;
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bmp, (W - w) / 2, (H - hh) / 2, w, hh);
  bmp.close();
  const img = ctx.getImageData(0, 0, W, H);
  const d = img.data;
  for (let i = 0; i < d.length; i += 4) {
    const y = Math.round(0.2126 * d[i]! + 0.7152 * d[i + 1]! + 0.0722 * d[i + 2]!);
    d[i] = d[i + 1] = d[i + 2] = y;
  }
  ctx.putImageData(img, 0, 0);
  return true;
}

