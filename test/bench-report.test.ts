/**
 * The pure half of `npm run bench` (bench/report.ts): the doc rewrite that must keep hand-written
 * notes, the target verdicts and the table formatting. No timing here: the figures are made up.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BEGIN, bestTorch, describeCpu, END, evaluateTargets, formatMs, formatRatio, markdownTable, median, paramsMatch, parseParts,
  renderResults, replaceSection, stepRatio, type BenchResults, type HttpRow, type TrainRow,
} from '../bench/report.ts';

const train = (arch: string, qgateMs: number, torchMs?: number): TrainRow => ({
  arch, qgateMs, qgatePenaltyMs: qgateMs * 2, torch: torchMs ? [{ threads: 1, ms: torchMs }] : [], roundRatios: torchMs ? [qgateMs / torchMs] : [],
  params: { qgate: [10, 20], torch: torchMs ? [10, 20] : undefined },
});
const score = (rps: number, p99: number, non2xx = 0): HttpRow => ({
  label: 'POST /score (raw image/png)', requestsPerSecond: rps, p50Ms: p99 / 2, p99Ms: p99, requests: rps * 10, non2xx, errors: 0, connections: 32, durationS: 10,
});

describe('bench report', () => {
  test('median of odd, even and empty lists, without reordering the input', () => {
    const xs = [5, 1, 3];
    assert.equal(median(xs), 3);
    assert.deepEqual(xs, [5, 1, 3]);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });

  test('ratios and times are formatted by size, missing ones as a dash', () => {
    assert.equal(formatRatio(1.234), '1.23×');
    assert.equal(formatRatio(12.34), '12.3×');
    assert.equal(formatRatio(undefined), '—');
    assert.equal(formatMs(3.14159), '3.14');
    assert.equal(formatMs(31.4159), '31.4');
    assert.equal(formatMs(314.159), '314');
    assert.equal(stepRatio(train('mlp', 30, 10)), 3);
    assert.equal(stepRatio(train('mlp', 30)), undefined);
  });

  test('a parameter-count mismatch between qgate and the PyTorch reference is reported', () => {
    assert.equal(paramsMatch(train('mlp', 1, 1)), true);
    assert.equal(paramsMatch({ ...train('mlp', 1, 1), params: { qgate: [10, 20], torch: [11, 20] } }), false);
    assert.equal(paramsMatch(train('mlp', 1)), undefined);
  });

  test('targets: step ratio ≤ 2, /score ≥ 1000 img/s with p99 < 50 ms and no failures, Q ≥ 5000 img/s at batch 64', () => {
    const verdicts = (r: Parameters<typeof evaluateTargets>[0]) => evaluateTargets(r).map((t) => t.verdict);
    assert.deepEqual(verdicts({
      train: [train('mlp', 20, 10), train('dcgan', 21, 10)],
      http: [score(1000, 49)],
      q: [{ label: 'score(), batch 1', imagesPerSecond: 9000, msPerCall: 1 }, { label: 'score(), batch 64', imagesPerSecond: 5000, msPerCall: 12.8 }],
    }), ['met', 'not met', 'met', 'met']);
    assert.deepEqual(verdicts({ train: [train('mlp', 20), train('dcgan', 20)], http: [score(2000, 50)] }), ['not measured', 'not measured', 'not met', 'not measured']);
    assert.deepEqual(verdicts({ http: [score(2000, 10, 3)] }).slice(2, 3), ['not met']);
    assert.match(evaluateTargets({ train: [train('mlp', 20)] })[0]!.measured, /no PyTorch reference/);
  });

  test('the step ratio is taken against PyTorch\'s faster thread count, whichever it is', () => {
    // On a shared 2-core machine torch's second thread can slow it down; more cores must not flatter qgate.
    const twoSlower = { ...train('dcgan', 120), torch: [{ threads: 1, ms: 60 }, { threads: 2, ms: 140 }] };
    assert.equal(stepRatio(twoSlower), 2);
    assert.deepEqual(bestTorch(twoSlower), { threads: 1, ms: 60 });
    const twoFaster = { ...train('dcgan', 120), torch: [{ threads: 1, ms: 60 }, { threads: 2, ms: 40 }] };
    assert.equal(stepRatio(twoFaster), 3);
    assert.equal(stepRatio(train('dcgan', 120)), undefined);
  });

  test('markdown tables escape pipes', () => {
    assert.equal(markdownTable(['a', 'b'], [['1', 'x|y']]), '| a | b |\n|---|---|\n| 1 | x\\|y |');
  });

  test('replaceSection creates the doc, then rewrites only between the markers', () => {
    const first = replaceSection(undefined, 'run 1');
    assert.match(first, /^# Benchmarks/);
    assert.match(first, /## Changes and their effect/);
    assert.ok(first.includes(`${BEGIN}\nrun 1\n${END}`));
    const edited = first.replace('## Changes and their effect\n', '## Changes and their effect\n\nhand-written: kernel X gained 3×\n') + '\ntrailer by hand\n';
    const second = replaceSection(edited, 'run 2\n');
    assert.ok(second.includes('hand-written: kernel X gained 3×'));
    assert.ok(second.endsWith('\ntrailer by hand\n'));
    assert.ok(second.includes(`${BEGIN}\nrun 2\n${END}`));
    assert.ok(!second.includes('run 1'));
    assert.equal(second.split(BEGIN).length, 2);
  });

  test('replaceSection keeps a doc without markers and appends the section; one marker alone is an error', () => {
    const out = replaceSection('# Mine\n\nnotes\n', 'figures');
    assert.ok(out.startsWith('# Mine\n\nnotes\n'));
    assert.ok(out.includes(`${BEGIN}\nfigures\n${END}`));
    assert.throws(() => replaceSection(`x ${BEGIN} y`, 'z'), /both be present/);
    assert.throws(() => replaceSection(`${END} x ${BEGIN}`, 'z'), /both be present/);
  });

  test('--only parses into the known parts in run order', () => {
    assert.deepEqual(parseParts(undefined), ['train', 'q', 'generate', 'http']);
    assert.deepEqual(parseParts('http, train'), ['train', 'http']);
    assert.throws(() => parseParts('train,gpu'), /unknown part\(s\) gpu/);
  });

  test('the rendered section names machine, versions and command, and says when PyTorch was skipped', () => {
    const r: BenchResults = {
      date: '2026-01-01T00:00:00Z', command: 'npm run bench -- --quick',
      machine: { cpu: 'Test CPU', cores: 2, loadStart: [1, 1, 1], loadEnd: [2, 2, 2] },
      versions: { node: 'v20', tfjs: '4.22.0', backend: 'wasm', threads: 1 },
      method: { quick: false, rounds: 1, trainSteps: 1, warmup: 0, roundWarmup: 0, settleMs: 0, qRounds: 1, httpSeconds: 1 },
      torchSkipped: 'no python with torch', train: [train('mlp', 20)], notes: ['a note'],
    };
    const text = renderResults(r);
    for (const s of ['`npm run bench -- --quick`', 'Test CPU, 2 cores', 'start 1.00 / 1.00 / 1.00, end 2.00 / 2.00 / 2.00', '4.22.0', 'skipped: no python with torch', '- a note']) {
      assert.ok(text.includes(s), s);
    }
    assert.match(text, /\| mlp \| 20\.0 \| skipped \| — \|/);
    assert.ok(text.includes('each turn 0 ms idle and 0 untimed steps before the timed ones'));
    assert.ok(!text.includes('smoke run'));
    const quick = renderResults({ ...r, method: { ...r.method, quick: true } });
    assert.match(quick, /### Targets \(issue 5\)\n\nA `--quick` smoke run: too few steps/);
  });

  test('the machine row names the CPU family and model that /proc/cpuinfo gives', () => {
    const cpuinfo = 'processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n\nprocessor\t: 1\ncpu family\t: 26\n';
    assert.equal(describeCpu('AMD EPYC', cpuinfo), 'AMD EPYC (family 26, model 2, AVX-512)');
    assert.equal(describeCpu('Intel Xeon', cpuinfo.replace(' avx512f avx512bw', '')), 'Intel Xeon (family 26, model 2)');
    // "model name" must not be read as "model"; without the fields (no Linux) the name stands alone.
    assert.equal(describeCpu('Apple M2', 'model name\t: Apple M2\n'), 'Apple M2');
    assert.equal(describeCpu('unknown CPU', ''), 'unknown CPU');
  });
});
