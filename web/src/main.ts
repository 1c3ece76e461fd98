/** The page: four tabs (WAI-ARIA tabs: arrow keys, Home/End), each a panel mounted once. */
import './style.css';
import { api, describeError, type GeneratorInfo, type Status } from './api.ts';
import { $, h } from './dom.ts';
import { mountGenerate } from './generate.ts';
import { mountRuns } from './runs.ts';
import { mountScore } from './score.ts';
import { mountStatus } from './status.ts';

const TABS = ['score', 'generate', 'runs', 'status'] as const;
type Tab = (typeof TABS)[number];

function select(tab: Tab, focus: boolean): void {
  for (const t of TABS) {
    const button = $(`tab-${t}`);
    const on = t === tab;
    button.setAttribute('aria-selected', String(on));
    button.tabIndex = on ? 0 : -1;
    $(`panel-${t}`).hidden = !on;
    if (on && focus) button.focus();
  }
  if (location.hash !== `#${tab}`) history.replaceState(null, '', `#${tab}`);
}

async function main(): Promise<void> {
  const tablist = $('tabs');
  tablist.addEventListener('click', (e) => {
    const id = (e.target as HTMLElement).closest('[role=tab]')?.id;
    if (id) select(id.slice(4) as Tab, false);
  });
  tablist.addEventListener('keydown', (e) => {
    const current = TABS.findIndex((t) => $(`tab-${t}`).getAttribute('aria-selected') === 'true');
    const next = { ArrowRight: current + 1, ArrowLeft: current - 1, Home: 0, End: TABS.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    select(TABS[(next + TABS.length) % TABS.length]!, true);
  });
  const fromHash = location.hash.slice(1) as Tab;
  select(TABS.includes(fromHash) ? fromHash : 'score', false);

  const [status, generators] = await Promise.allSettled([api.status(), api.generators()]);
  const s: Status | undefined = status.status === 'fulfilled' ? status.value : undefined;
  const g: GeneratorInfo[] = generators.status === 'fulfilled' ? generators.value : [];
  mountScore($('panel-score'), s);
  mountGenerate($('panel-generate'), s, g);
  mountRuns($('panel-runs'), g);
  mountStatus($('panel-status'), s, status.status === 'rejected' ? status.reason : undefined);
  if (generators.status === 'rejected') {
    $('panel-generate').prepend(h('div', { class: 'error', role: 'alert' }, describeError(generators.reason)));
  }
  document.body.dataset.ready = 'true';
}

void main();
