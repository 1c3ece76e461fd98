import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ABLATION_ARMS, armArgs, armName } from '../src/cli/ablation.ts';

const run = promisify(execFile);
const flags = { steps: 3, evalSamples: 40, seed: 7, jobs: 2, docs: 'docs', trainCount: 256 };

test('Every arm is an npm run train command with the same seed and budget; a resumed arm keeps its own configuration', () => {
  const fresh = ABLATION_ARMS.map((arm) => armArgs(arm, flags, `/runs/${armName(arm)}`, false));
  for (const [i, args] of fresh.entries()) {
    const arm = ABLATION_ARMS[i]!;
    const value = (flag: string) => args[args.indexOf(flag) + 1];
    assert.deepEqual([value('--arch'), value('--lambda'), value('--seed'), value('--steps'), value('--eval-samples')], [arm.arch, String(arm.lambda), '7', '3', '40']);
    assert.ok(args.includes('--no-publish'));
  }
  const resumed = armArgs(ABLATION_ARMS[1]!, flags, '/runs/dcgan-lambda0.1', true);
  assert.deepEqual(resumed.slice(0, 2), ['--resume', '/runs/dcgan-lambda0.1']);
  assert.ok(!resumed.includes('--arch') && !resumed.includes('--seed'), 'a resume must not restate what the checkpoint holds');
});

test('npm run ablation trains the five arms two at a time, writes the table and grids, and reuses finished arms on a rerun', { timeout: 300_000 }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'qgate-ablation-'));
  try {
    const args = ['--import', 'tsx', 'src/cli/ablation.ts', '--steps', '3', '--eval-samples', '40', '--seed', '7', '--jobs', '2',
      '--train-count', '256', '--out', path.join(dir, 'runs'), '--docs', path.join(dir, 'docs')];
    const first = await run(process.execPath, args, { maxBuffer: 1 << 24 });
    assert.equal((first.stdout.match(/\] starting: 3 steps/g) ?? []).length, 5, first.stdout);
    const md = await readFile(path.join(dir, 'docs', 'ABLATION.md'), 'utf8');
    const rows = md.split('\n').filter((l) => /^\| (dcgan|mlp) \| /.test(l));
    assert.deepEqual(rows.map((r) => r.split('|').slice(1, 3).map((c) => c.trim()).join(' λ=')),
      ['dcgan λ=0', 'dcgan λ=0.1', 'dcgan λ=0.5', 'mlp λ=0', 'mlp λ=0.1']);
    assert.match(md, /--steps 3 --jobs 2 --eval-samples 40 --seed 7 --train-count 256/);
    assert.ok((await stat(path.join(dir, 'docs', 'ablation-grids.png'))).size > 1000);
    const json = JSON.parse(await readFile(path.join(dir, 'docs', 'ablation.json'), 'utf8')) as { results: Array<{ steps: number; eval: { samples: number } }> };
    assert.deepEqual(json.results.map((r) => [r.steps, r.eval.samples]), Array(5).fill([3, 40]));

    const second = await run(process.execPath, args, { maxBuffer: 1 << 24 });
    assert.doesNotMatch(second.stdout, /starting|resuming/, 'finished arms are read back, not retrained');
    assert.equal(await readFile(path.join(dir, 'docs', 'ABLATION.md'), 'utf8').then((t) => t.split('\n').filter((l) => /^\| (dcgan|mlp) \| /.test(l)).join('\n')), rows.join('\n'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
