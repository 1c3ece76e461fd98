/** Status: the TF.js backend in use, the loaded models, the gate and the limits, with API links. */
import { api, describeError, type Status } from './api.ts';
import { h } from './dom.ts';

export function mountStatus(panel: HTMLElement, first: Status | undefined, firstError?: unknown): void {
  const body = h('div', { id: 'status-body' });
  const refresh = h('button', { type: 'button', class: 'secondary', onclick: () => void load() }, 'Refresh');
  panel.append(
    h('h2', {}, 'Status'),
    body,
    h('div', { class: 'card' }, h('h3', {}, 'For machines'),
      h('ul', {},
        h('li', {}, h('a', { href: '/metrics' }, '/metrics'), ' — Prometheus metrics'),
        h('li', {}, h('a', { href: '/openapi.json' }, '/openapi.json'), ' — the OpenAPI 3 document of the REST API'),
        h('li', {}, h('a', { href: '/v1/status' }, '/v1/status'), ', ', h('a', { href: '/readyz' }, '/readyz'), ', ', h('a', { href: '/healthz' }, '/healthz'))),
      refresh),
  );
  const render = (s: Status) => {
    const ex = s.models.extractor;
    const ref = s.models.reference;
    body.replaceChildren(
      h('div', { class: 'row' },
        h('div', { class: 'card', style: 'flex:1 1 240px' },
          h('div', { class: 'muted' }, 'TF.js backend in use'),
          h('div', { class: 'backend', id: 'status-backend' }, s.backend?.name ?? 'not started'),
          s.backend ? h('p', { class: 'muted' }, `TF.js "${s.backend.tfBackend}" · ${s.backend.reason}`) : null,
          h('p', {}, h('span', { class: `verdict ${s.ready ? 'pass' : 'fail'}` }, s.ready ? 'ready' : 'not ready'), ` ${s.state} · up ${s.uptimeSeconds} s`)),
        h('div', { class: 'card', style: 'flex:2 1 320px' }, h('h3', {}, 'Loaded models'),
          h('dl', { class: 'kv', id: 'status-models' },
            h('dt', {}, 'extractor φ'), h('dd', {}, ex ? `${ex.id} (${ex.architecture}; features from ${ex.featureLayer}; input ${ex.input.width}×${ex.input.height}×${ex.input.channels})` : '—'),
            h('dt', {}, 'reference set'), h('dd', {}, ref ? `${ref.id} (${ref.count} images of ${ref.data}, k = ${ref.k})` : '—'),
            ...s.models.generators.flatMap((g) => [h('dt', {}, `generator ${g.name}`), h('dd', {}, `active ${g.active ?? 'none'}${g.pinned ? `, pinned ${g.pinned}` : ''}; loaded: ${g.loaded.join(', ') || 'none'}`)]),
            h('dt', {}, 'gate'), h('dd', {}, s.gate ? `τ = ${s.gate.tau}, α = ${s.gate.alpha}, β = ${s.gate.beta}, noise estimator ${s.gate.noiseEstimator}` : '—'),
            h('dt', {}, 'limits'), h('dd', {}, `uploads up to ${s.limits.maxUploadBytes} bytes and ${s.limits.maxPixels} pixels; n ≤ ${s.limits.generateMaxN}`)))),
    );
  };
  const load = async () => {
    try {
      render(await api.status());
    } catch (e) {
      body.replaceChildren(h('div', { class: 'error', role: 'alert' }, describeError(e)));
    }
  };
  if (first) render(first);
  else if (firstError) body.replaceChildren(h('div', { class: 'error', role: 'alert' }, describeError(firstError)));
}
