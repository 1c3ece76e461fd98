/**
 * The pure half of `npm run bench` (bench/index.ts): statistics, the issue's targets, the markdown
 * tables and the rewrite of docs/BENCHMARKS.md between its markers. Nothing here times anything,
 * so test/bench-report.test.ts checks it without a clock.
 */

export const PARTS = ['train', 'q', 'generate', 'http'] as const;
export type Part = (typeof PARTS)[number];

export const BEGIN = '<!-- bench:begin -->';
export const END = '<!-- bench:end -->';

/** The issue's targets (issue 5), as numbers the verdicts are computed from. */
export const TARGETS = {
  /** qgate's step time ≤ this × PyTorch's, per architecture. */
  stepRatio: 2,
  /** POST /score images/s at 32 connections… */
  scoreRps: 1000,
  /** …with p99 below this (ms). */
  scoreP99Ms: 50,
  /** In-process Q images/s at batch 64. */
  qBatch64: 5000,
} as const;

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Machine {
  cpu: string;
  cores: number;
  /** os.loadavg() (1, 5, 15 min) when the bench started and when it ended. */
  loadStart: number[];
  loadEnd: number[];
}

export interface Versions {
  node: string;
  tfjs: string;
  backend: string;
  /** e.g. "SIMD true, 2 XNNPACK threads" (wasm only). */
  backendDetail?: string | undefined;
  /** qgate's compute threads (the wasm backend's XNNPACK pool; 1 elsewhere). */
  threads: number;
  /** The thread counts PyTorch ran with. */
  torchThreads?: number[] | undefined;
  python?: string | undefined;
  torch?: string | undefined;
  /** The BLAS library the PyTorch process loaded. */
  blas?: string | undefined;
}

export interface TrainRow {
  arch: string;
  /** Median ms per step (one D step + one G step), λ = 0. */
  qgateMs: number;
  /** Of the λ = 0 step: the forward pass of Q on G(z) for the log, timed alone (PyTorch has none). */
  qualityLogMs?: number | undefined;
  /** The same with λ = 0.1 (Q back-propagated into G; no PyTorch counterpart). */
  qgatePenaltyMs: number;
  /**
   * PyTorch's median ms per step for each thread count it ran with (1, and qgate's count when that
   * is more); empty when the reference did not run.
   */
  torch: Array<{ threads: number; ms: number }>;
  /** qgate λ=0 / PyTorch per round (adjacent measurements), to show how much the load moved them. */
  roundRatios: number[];
  /** Trainable parameters of G and D on each side; a mismatch means the reference drifted from gan.ts. */
  params: { qgate: [number, number]; torch?: [number, number] | undefined };
}

export interface ThroughputRow {
  label: string;
  imagesPerSecond: number;
  /** Median ms per call. */
  msPerCall: number;
  note?: string | undefined;
}

export interface HttpRow {
  label: string;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
  errors: number;
  connections: number;
  durationS: number;
}

export interface BenchResults {
  date: string;
  command: string;
  machine: Machine;
  versions: Versions;
  /** Rounds and steps as run (for the doc's method line). */
  method: { quick: boolean; rounds: number; trainSteps: number; warmup: number; roundWarmup: number; settleMs: number; qRounds: number; httpSeconds: number };
  /** Why the PyTorch reference did not run, when it did not. */
  torchSkipped?: string | undefined;
  train?: TrainRow[] | undefined;
  q?: ThroughputRow[] | undefined;
  generate?: ThroughputRow[] | undefined;
  http?: HttpRow[] | undefined;
  /** Generator that the generate part sampled from, as name/version. */
  generator?: string | undefined;
  notes: string[];
}

export type Verdict = 'met' | 'not met' | 'not measured';

export interface TargetRow {
  target: string;
  measured: string;
  verdict: Verdict;
}

/** A ratio as "3.4×", or "—" when either side is missing. */
export function formatRatio(r: number | undefined): string {
  return r === undefined || !Number.isFinite(r) ? '—' : `${r.toFixed(r < 10 ? 2 : 1)}×`;
}

/** Milliseconds with precision that suits their size. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '—';
  return ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0);
}

export function formatRate(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '—';
  return x < 100 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US');
}

/** PyTorch's fastest configuration: the reference the ratio is taken against. */
export function bestTorch(row: TrainRow): { threads: number; ms: number } | undefined {
  return row.torch.reduce<{ threads: number; ms: number } | undefined>((best, t) => (best && best.ms <= t.ms ? best : t), undefined);
}

export function stepRatio(row: TrainRow): number | undefined {
  const best = bestTorch(row);
  return best === undefined ? undefined : row.qgateMs / best.ms;
}

export function paramsMatch(row: TrainRow): boolean | undefined {
  const t = row.params.torch;
  return t === undefined ? undefined : t[0] === row.params.qgate[0] && t[1] === row.params.qgate[1];
}

/** The issue's three targets (the step one per architecture) with their verdicts. */
export function evaluateTargets(r: Pick<BenchResults, 'train' | 'q' | 'http'>): TargetRow[] {
  const rows: TargetRow[] = [];
  for (const arch of ['mlp', 'dcgan']) {
    const t = r.train?.find((x) => x.arch === arch);
    const ratio = t ? stepRatio(t) : undefined;
    rows.push({
      target: `${arch} step ≤ ${TARGETS.stepRatio}× PyTorch (λ = 0)`,
      measured: ratio === undefined ? (t ? 'no PyTorch reference' : 'not run') : formatRatio(ratio),
      verdict: ratio === undefined ? 'not measured' : ratio <= TARGETS.stepRatio ? 'met' : 'not met',
    });
  }
  const score = r.http?.find((x) => x.label.startsWith('POST /score'));
  rows.push({
    target: `POST /score ≥ ${TARGETS.scoreRps.toLocaleString('en-US')} images/s with p99 < ${TARGETS.scoreP99Ms} ms (32 connections)`,
    measured: score ? `${formatRate(score.requestsPerSecond)} images/s, p99 ${formatMs(score.p99Ms)} ms` : 'not run',
    // A run with failed requests has not served the images it claims, whatever its rate.
    verdict: !score ? 'not measured'
      : score.requestsPerSecond >= TARGETS.scoreRps && score.p99Ms < TARGETS.scoreP99Ms && score.non2xx === 0 && score.errors === 0 ? 'met' : 'not met',
  });
  // The best batch-64 figure: on one thread, or on the worker pool the service scores with.
  const q64 = r.q?.filter((x) => x.label.includes('batch 64')).sort((a, b) => b.imagesPerSecond - a.imagesPerSecond)[0];
  rows.push({
    target: `in-process Q ≥ ${TARGETS.qBatch64.toLocaleString('en-US')} images/s at batch 64`,
    measured: q64 ? `${formatRate(q64.imagesPerSecond)} images/s (${q64.label})` : 'not run',
    verdict: !q64 ? 'not measured' : q64.imagesPerSecond >= TARGETS.qBatch64 ? 'met' : 'not met',
  });
  return rows;
}

function threadsText(n: number): string {
  return n === 1 ? '1 thread' : `${n} threads`;
}

export function markdownTable(headers: string[], rows: string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `| ${headers.map(esc).join(' | ')} |`,
    `|${headers.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

function range(values: number[]): string {
  if (!values.length) return '—';
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return `${formatRatio(lo)}–${formatRatio(hi)}`;
}

const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');

/** The generated part of docs/BENCHMARKS.md (what goes between the markers) and the console's view of it. */
export function renderResults(r: BenchResults): string {
  const out: string[] = [];
  const v = r.versions;
  out.push(`Generated ${r.date} by \`${r.command}\`.`, '');
  out.push(markdownTable(['', ''], [
    ['machine', `${r.machine.cpu}, ${r.machine.cores} cores`],
    ['load average (1/5/15 min)', `start ${load(r.machine.loadStart)}, end ${load(r.machine.loadEnd)}`],
    ['Node', v.node],
    ['TF.js', `${v.tfjs}, backend ${v.backend}${v.backendDetail ? ` (${v.backendDetail})` : ''}`],
    ['PyTorch reference', v.torch ? `torch ${v.torch}, Python ${v.python ?? '?'}, ${(v.torchThreads ?? [1]).map(threadsText).join(' and ')}, BLAS ${v.blas ?? '?'}` : `skipped: ${r.torchSkipped ?? 'not run'}`],
    ['method', `train: ${r.method.rounds} rounds × ${r.method.trainSteps} steps per side after ${r.method.warmup} warm-up, qgate and PyTorch alternating, each turn ${r.method.settleMs} ms idle and ${r.method.roundWarmup} untimed steps before the timed ones; Q and generate: median of ${r.method.qRounds} rounds; HTTP: autocannon ${r.method.httpSeconds} s per endpoint`],
  ]));
  out.push('', '### Targets (issue 5)', '');
  if (r.method.quick) out.push('A `--quick` smoke run: too few steps, no idle or untimed steps between turns, and short HTTP runs, so these verdicts say little. Run without `--quick` for figures.', '');
  out.push(markdownTable(['target', 'measured', 'verdict'], evaluateTargets(r).map((t) => [t.target, t.measured, t.verdict])));

  out.push('', '### Training step, batch 64 (one D step + one G step)', '');
  if (r.train?.length) {
    out.push(markdownTable(
      ['arch', `qgate λ=0 (ms, ${threadsText(v.threads)})`, 'PyTorch (ms)', 'ratio', 'ratio per round', 'Q log, 1 step in 50 (ms)', 'qgate λ=0.1 (ms)', 'params G/D match'],
      r.train.map((t) => {
        const m = paramsMatch(t);
        const best = bestTorch(t);
        return [
          t.arch, formatMs(t.qgateMs),
          best === undefined ? 'skipped' : t.torch.map((x) => `${x === best ? '**' : ''}${formatMs(x.ms)} (${threadsText(x.threads)})${x === best ? '**' : ''}`).join(', '),
          formatRatio(stepRatio(t)),
          range(t.roundRatios), formatMs(t.qualityLogMs), formatMs(t.qgatePenaltyMs),
          m === undefined ? '—' : m ? `yes (${t.params.qgate.join(' / ')})` : `NO: qgate ${t.params.qgate.join(' / ')}, PyTorch ${t.params.torch!.join(' / ')}`,
        ];
      }),
    ));
    out.push('', 'Medians over all timed steps; the ratio is qgate λ=0 / PyTorch, and "ratio per round" the range of the same ratio within each round '
      + '(adjacent measurements, so it shows how much the machine\'s load moved them). '
      + 'λ = 0 is the comparable step. At λ = 0 qgate\'s trainer measures Q forward on G(z) for its log on the last step of each log interval (1 step in 50 by default), which the PyTorch reference does not; '
      + 'the λ = 0 column is the other 49, and "Q log" is the extra cost of the 50th. λ = 0.1 back-propagates Q into G and has no PyTorch counterpart. '
      + 'Both sides: src/train/run.ts\'s default learning rates per architecture, Adam(β1 = 0.5), fresh z every step. '
      + `qgate ran on ${threadsText(v.threads)}; PyTorch on ${(v.torchThreads ?? [1]).map(threadsText).join(' and ')}, and the ratio is against its faster configuration (in bold), `
      + 'so that giving qgate more cores cannot flatter it where PyTorch\'s extra threads slow it down.');
    if (r.torchSkipped) out.push('', `PyTorch reference skipped: ${r.torchSkipped}.`);
  } else out.push('not run');

  out.push('', '### In-process Q scoring (`loadQuality(config).score()`, MNIST test digits)', '');
  out.push(r.q?.length ? throughputTable(r.q) : 'not run');

  out.push('', `### Generate (the service's GenerationCore, n = 64 per call${r.generator ? `, ${r.generator}` : ''})`, '');
  out.push(r.generate?.length ? throughputTable(r.generate) : 'not run');

  out.push('', '### HTTP (real server in a child process, autocannon in the bench process)', '');
  out.push(r.http?.length ? markdownTable(
    ['request', 'connections', 'requests/s', 'p50 (ms)', 'p99 (ms)', 'requests', 'non-2xx', 'errors'],
    r.http.map((h) => [h.label, String(h.connections), formatRate(h.requestsPerSecond), formatMs(h.p50Ms), formatMs(h.p99Ms), String(h.requests), String(h.non2xx), String(h.errors)]),
  ) : 'not run');
  if (r.http?.length) {
    out.push('', `The load generator runs on the same ${r.machine.cores} cores as the server, so these rates are a floor for the server alone. `
      + 'POST /score sends one MNIST test digit as a raw image/png body: requests/s = images/s. GET /healthz is the floor: the HTTP stack\'s own cost per request, which no endpoint can beat.');
  }
  if (r.notes.length) out.push('', '### Notes', '', ...r.notes.map((n) => `- ${n}`));
  return out.join('\n');
}

function throughputTable(rows: ThroughputRow[]): string {
  return markdownTable(['case', 'images/s', 'ms per call', 'note'],
    rows.map((q) => [q.label, formatRate(q.imagesPerSecond), formatMs(q.msPerCall), q.note ?? '']));
}

const HEADER = `# Benchmarks

Speed of qgate's training step, scoring and generation on the portable (wasm) backend, against a
PyTorch reference of the same models in the same run (issue 5). Reproduce with \`npm run bench\`
(\`--quick\` for a smoke run, \`--only train,q,generate,http\`, \`--out <file>\`). The section between
the bench markers is rewritten by every run; everything else in this file is written by hand and kept.

The PyTorch reference (\`bench/torch_gan.py\`) is only a fair one with an optimized BLAS: Debian's
\`python3-torch\` links \`libblas.so.3\`, which is the reference (netlib) BLAS unless
\`libopenblas0-pthread\` is installed; with the reference BLAS its MLP step is about 10× slower. The bench prints
which BLAS the reference loaded and warns when it is the reference one.

## Changes and their effect

(Written by hand: for each change, what it was predicted to gain and what it gained.)

## Latest run
`;

/**
 * Puts `generated` between the markers of `doc`, keeping everything outside them. Without markers
 * (or without a doc) the hand-written skeleton is laid out first, so the first run creates the file.
 */
export function replaceSection(doc: string | undefined, generated: string): string {
  const block = `${BEGIN}\n${generated.trim()}\n${END}`;
  const base = doc ?? '';
  const b = base.indexOf(BEGIN);
  const e = base.indexOf(END);
  if (b >= 0 && e > b) return base.slice(0, b) + block + base.slice(e + END.length);
  if (b >= 0 || e >= 0) throw new Error(`${BEGIN} and ${END} must both be present, in that order`);
  const head = base.trim() ? `${base.trimEnd()}\n\n## Latest run\n` : HEADER;
  return `${head}\n${block}\n`;
}

/** `--only train,q` → the parts to run; unknown names are an error naming the valid ones. */
/**
 * The CPU's name with its family and model, where /proc/cpuinfo's text gives them: virtual machines
 * often report only "AMD EPYC", and two EPYC generations here ran the same bench up to twice apart,
 * so the absolute figures (Q's images/s, HTTP) mean little without them.
 */
export function describeCpu(name: string, cpuinfo: string): string {
  const field = (key: string): string | undefined => new RegExp(`^${key}\\s*:\\s*(.*)$`, 'm').exec(cpuinfo)?.[1]?.trim();
  const family = field('cpu family');
  const model = field('model');
  if (family === undefined || model === undefined) return name;
  const avx512 = /\bavx512f\b/.test(field('flags') ?? '') ? ', AVX-512' : '';
  return `${name} (family ${family}, model ${model}${avx512})`;
}

export function parseParts(spec: string | undefined): Part[] {
  if (spec === undefined || spec.trim() === '') return [...PARTS];
  const parts = spec.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = parts.filter((p) => !(PARTS as readonly string[]).includes(p));
  if (bad.length) throw new Error(`--only: unknown part(s) ${bad.join(', ')}; choose from ${PARTS.join(',')}`);
  return PARTS.filter((p) => parts.includes(p));
}
