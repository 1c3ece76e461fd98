/**
 * Generate: pick a generator and version, n, an optional τ and seed; the grid shows each image
 * with its Q, failing images struck through in red (and labelled, not only coloured). The grid
 * downloads as one PNG with the same labels, drawn on a canvas.
 */
import { api, describeError, type Generated, type GeneratorInfo, type Status } from './api.ts';
import { h } from './dom.ts';

export function mountGenerate(panel: HTMLElement, status: Status | undefined, generators: GeneratorInfo[]): void {
  const maxN = status?.limits.generateMaxN ?? 256;
  const defaultTau = status?.gate?.tau ?? 0.3;
  const gen = h('select', { id: 'gen-generator' });
  const ver = h('select', { id: 'gen-version' });
  for (const g of generators) gen.append(h('option', { value: g.name }, g.name));
  const fillVersions = () => {
    const g = generators.find((x) => x.name === gen.value);
    ver.replaceChildren(h('option', { value: '' }, `active${g?.active ? ` (${g.active})` : ''}`));
    for (const v of g?.versions ?? []) {
      if (v.state !== 'failed') ver.append(h('option', { value: v.version }, `${v.version}${v.state === 'active' ? ' (active)' : ''}`));
    }
  };
  gen.addEventListener('change', fillVersions);
  fillVersions();
  const n = h('input', { type: 'number', id: 'gen-n', min: '1', max: String(maxN), value: '16', required: true });
  const useTau = h('input', { type: 'checkbox', id: 'gen-use-tau' });
  const tau = h('input', { type: 'number', id: 'gen-tau', min: '0.01', max: '1', step: '0.01', value: String(defaultTau), disabled: true, 'aria-label': 'τ for rejection sampling' });
  useTau.addEventListener('change', () => { tau.disabled = !useTau.checked; });
  const seed = h('input', { type: 'number', id: 'gen-seed', min: '0', max: '4294967295', placeholder: 'random' });
  const go = h('button', { type: 'submit', class: 'primary', id: 'gen-go' }, 'Generate');
  const download = h('button', { type: 'button', class: 'secondary', id: 'gen-download', disabled: true }, 'Download grid as PNG');
  const error = h('div', { class: 'error', role: 'alert', id: 'gen-error' });
  const summary = h('p', { class: 'muted', id: 'gen-summary', 'aria-live': 'polite' });
  const grid = h('div', { class: 'grid', id: 'gen-grid' });

  const form = h('form', { class: 'row', style: 'align-items:flex-end' },
    h('div', { class: 'field' }, h('label', { for: 'gen-generator' }, 'Generator'), gen),
    h('div', { class: 'field' }, h('label', { for: 'gen-version' }, 'Version'), ver),
    h('div', { class: 'field' }, h('label', { for: 'gen-n' }, `n (1–${maxN})`), n),
    h('div', { class: 'field' }, h('span', {}, useTau, ' ', h('label', { for: 'gen-use-tau' }, 'keep only Q < τ')), tau),
    h('div', { class: 'field' }, h('label', { for: 'gen-seed' }, 'Seed (optional)'), seed),
    go, download);
  panel.append(
    h('h2', {}, 'Generate'),
    h('div', { class: 'card' }, form,
      h('p', { class: 'muted' }, `Without τ every sample is shown and marked against the default τ = ${defaultTau}. With τ the service draws until n pass (or gives up after a bound), so every image shown passes.`),
      error),
    h('div', { class: 'card' }, summary, grid),
  );
  if (!generators.length) error.textContent = 'No generator is published yet.';

  let last: Generated | undefined;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const params = new URLSearchParams({ format: 'json', n: n.value });
    if (gen.value) params.set('generator', gen.value);
    if (ver.value) params.set('version', ver.value);
    if (useTau.checked) params.set('tau', tau.value);
    if (seed.value.trim()) params.set('seed', seed.value.trim());
    go.disabled = true;
    grid.setAttribute('aria-busy', 'true');
    try {
      last = await api.generate(params);
      render(last);
      download.disabled = last.images.length === 0;
    } catch (err) {
      error.textContent = describeError(err);
    } finally {
      go.disabled = false;
      grid.removeAttribute('aria-busy');
    }
  });
  download.addEventListener('click', () => { if (last) void downloadGrid(last, defaultTau); });

  const render = (r: Generated) => {
    // Without τ the service returns every sample, each marked against its default τ.
    const failed = r.images.filter((im) => !im.passed).length;
    summary.textContent = `${r.generator}/${r.version} · seed ${r.seed} · ${r.count} of ${r.n} images · ${r.attempts} drawn` +
      ` · ${failed} fail at τ ${r.tau ?? defaultTau}${r.exhausted ? ' · stopped at the attempt bound' : ''}`;
    if (!r.images.length) {
      grid.replaceChildren(h('p', { class: 'empty' }, `No sample passed τ = ${r.tau} within ${r.attempts} attempts: try a larger τ or another version.`));
      return;
    }
    grid.replaceChildren(...r.images.map((im, i) => h('figure', { class: im.passed ? 'pass' : 'fail', 'data-q': String(im.q) },
      h('img', { class: 'pix', src: `data:image/png;base64,${im.png}`, alt: `sample ${i + 1}, Q ${im.q.toFixed(3)}, ${im.passed ? 'passes' : 'fails'}`, width: 84, height: 84 }),
      h('figcaption', {}, `${im.passed ? '' : '✕ '}Q ${im.q.toFixed(3)}`))));
  };
}

async function downloadGrid(r: Generated, defaultTau: number): Promise<void> {
  const imgs = await Promise.all(r.images.map((im) => new Promise<HTMLImageElement>((resolve, reject) => {
    const el = new Image();
    el.onload = () => resolve(el);
    el.onerror = reject;
    el.src = `data:image/png;base64,${im.png}`;
  })));
  const cols = Math.ceil(Math.sqrt(imgs.length));
  const rows = Math.ceil(imgs.length / cols);
  const cell = 28 * 4;
  const label = 18;
  const pad = 6;
  const canvas = document.createElement('canvas');
  canvas.width = cols * (cell + pad) + pad;
  canvas.height = rows * (cell + label + pad) + pad + 22;
  const ctx = canvas.getContext('2d')!;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = false;
  ctx.font = '12px system-ui, sans-serif';
  ctx.fillStyle = '#1b1f24';
  ctx.fillText(`${r.generator}/${r.version} seed ${r.seed} τ ${r.tau ?? defaultTau}`, pad, 15);
  imgs.forEach((img, i) => {
    const x = pad + (i % cols) * (cell + pad);
    const y = 22 + pad + Math.floor(i / cols) * (cell + label + pad);
    ctx.drawImage(img, x, y, cell, cell);
    const im = r.images[i]!;
    if (!im.passed) {
      ctx.strokeStyle = '#b42318';
      ctx.lineWidth = 3;
      ctx.strokeRect(x + 1.5, y + 1.5, cell - 3, cell - 3);
    }
    ctx.fillStyle = im.passed ? '#1b1f24' : '#b42318';
    ctx.fillText(`${im.passed ? '' : '✕ '}Q ${im.q.toFixed(3)}`, x, y + cell + 13);
  });
  const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, 'image/png'));
  if (!blob) return;
  const a = h('a', { href: URL.createObjectURL(blob), download: `qgate-${r.generator}-${r.version}-seed${r.seed}.png` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
