/**
 * `npm run ablation`: does penalizing Q help? Trains, with the same seed and the same budget,
 *   dcgan with λ ∈ {0, 0.1, 0.5} and mlp with λ ∈ {0, 0.1}
 * (α = β = 0.5), evaluates each, and writes docs/ABLATION.md (a results table) and
 * docs/ablation-grids.png (the final 4×4 grid of each run, side by side, same latents).
 * Nothing is published.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { writeSvgAsPng } from '../train/artifacts.ts';
import type { EvalMetrics } from '../train/evaluate.ts';
import type { Architecture } from '../train/gan.ts';
import { CHECKPOINT_DIR } from '../train/checkpoint.ts';
import { DEFAULT_CONFIG } from '../train/run.ts';
import { gitCommit } from '../version.ts';
import { runCli } from './run.ts';

export const ABLATION_ARMS: Array<{ arch: Architecture; lambda: number }> = [
  { arch: 'dcgan', lambda: 0 },
  { arch: 'dcgan', lambda: 0.1 },
  { arch: 'dcgan', lambda: 0.5 },
  { arch: 'mlp', lambda: 0 },
  { arch: 'mlp', lambda: 0.1 },
];

interface ArmResult {
  arch: Architecture;
  lambda: number;
  runDir: string;
  backend: string;
  steps: number;
  stepMsMedian: number;
  seconds: number;
  eval: EvalMetrics;
  grid: string;
}

interface AblationFlags {
  steps: number;
  evalSamples: number;
  seed: number;
  jobs: number;
  out?: string;
  docs: string;
  trainCount: number;
}

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`not an integer: '${v}'`);
  return n;
};

function fmt(v: number, digits: number): string {
  return Number.isFinite(v) ? v.toFixed(digits) : 'n/a';
}

export function resultsTable(results: ArmResult[]): string {
  const head = '| arch | λ | FID ↓ | precision ↑ | recall ↑ | mean Q ↓ | pass rate @ τ=0.3 ↑ | mean noise | median step (ms) |\n|---|---|---|---|---|---|---|---|---|';
  const rows = results.map((r) => `| ${r.arch} | ${r.lambda} | ${fmt(r.eval.fid, 3)} | ${fmt(r.eval.precision, 3)} | ${fmt(r.eval.recall, 3)} | ${fmt(r.eval.meanQ, 3)} | ${fmt(100 * r.eval.passRate, 1)}% | ${fmt(r.eval.meanNoise, 4)} | ${fmt(r.stepMsMedian, 0)} |`);
  return [head, ...rows].join('\n');
}

async function sideBySide(results: ArmResult[], file: string): Promise<void> {
  const cell = 260;
  const width = cell * results.length;
  const images = await Promise.all(results.map(async (r) => (await readFile(r.grid)).toString('base64')));
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="${width}" height="${cell + 40}">
<rect width="100%" height="100%" fill="white"/>
${results.map((r, i) => `<text x="${i * cell + cell / 2}" y="22" text-anchor="middle" font-family="DejaVu Sans, sans-serif" font-size="14">${r.arch}, λ=${r.lambda}: FID ${fmt(r.eval.fid, 3)}, Q ${fmt(r.eval.meanQ, 2)}</text>
<image x="${i * cell + 8}" y="32" width="244" height="244" xlink:href="data:image/png;base64,${images[i]}"/>`).join('\n')}
</svg>`;
  await writeSvgAsPng(file, svg);
}

/** The `npm run train` command line of one arm; the architecture's default learning rates apply. */
export function armArgs(arm: { arch: Architecture; lambda: number }, flags: AblationFlags, runDir: string, resume: boolean): string[] {
  const common = ['--steps', String(flags.steps), '--eval-samples', String(flags.evalSamples), '--no-publish'];
  if (resume) return ['--resume', runDir, ...common];
  return [
    '--arch', arm.arch, '--lambda', String(arm.lambda), '--alpha', '0.5', '--beta', '0.5',
    '--seed', String(flags.seed), '--name', armName(arm), '--train-count', String(flags.trainCount),
    '--out', runDir, ...common,
  ];
}

export const armName = (arm: { arch: Architecture; lambda: number }) => `${arm.arch}-lambda${arm.lambda}`;

interface RunSummary {
  backend: string;
  step: number;
  stepMsMedian: number;
  seconds: number;
  eval?: EvalMetrics;
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Trains one arm in a child `npm run train` process. The wasm backend runs on one thread, so arms
 * in separate processes are what puts a second core to work. An arm whose summary already covers
 * the budget is reused, and one with a checkpoint resumes: an interrupted ablation continues.
 */
async function runArm(arm: { arch: Architecture; lambda: number }, flags: AblationFlags, outDir: string): Promise<ArmResult> {
  const name = armName(arm);
  const runDir = path.join(outDir, name);
  let summary = await readJson<RunSummary>(path.join(runDir, 'summary.json'));
  if (!(summary?.step === flags.steps && summary.eval)) {
    const resume = (await readJson(path.join(runDir, CHECKPOINT_DIR, 'state.json'))) !== undefined;
    console.log(`[${name}] ${resume ? 'resuming' : 'starting'}: ${flags.steps} steps, seed ${flags.seed}`);
    const trainCli = fileURLToPath(new URL('./train.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', trainCli, ...armArgs(arm, flags, runDir, resume)], { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => console.log(`[${name}] ${line}`));
    }
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    if (code !== 0) throw new Error(`arm ${name} failed (${signal ?? `exit code ${code}`}); rerun the same command to resume it`);
    summary = await readJson<RunSummary>(path.join(runDir, 'summary.json'));
  }
  if (!summary?.eval) throw new Error(`arm ${name} left no evaluation in ${runDir}/summary.json`);
  const grid = (await readdir(runDir)).find((f) => f.startsWith('final_Q'));
  if (!grid) throw new Error(`arm ${name} left no final grid in ${runDir}`);
  console.log(`[${name}] FID ${fmt(summary.eval.fid, 3)} precision ${fmt(summary.eval.precision, 3)} recall ${fmt(summary.eval.recall, 3)} mean Q ${fmt(summary.eval.meanQ, 3)}`);
  return { ...arm, runDir, backend: summary.backend, steps: summary.step, stepMsMedian: summary.stepMsMedian, seconds: summary.seconds, eval: summary.eval, grid: path.join(runDir, grid) };
}

/** Runs `work` over `items` with at most `jobs` at once; results keep the items' order. */
async function pool<T, R>(items: T[], jobs: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, worker));
  return results;
}

async function ablation(flags: AblationFlags): Promise<void> {
  const outDir = path.resolve(flags.out ?? path.join('runs', `ablation-${new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`));
  await mkdir(outDir, { recursive: true });
  console.log(`ablation in ${outDir}: ${ABLATION_ARMS.length} arms, ${flags.jobs} at a time`);
  const results = await pool(ABLATION_ARMS, flags.jobs, (arm) => runArm(arm, flags, outDir));
  const docs = path.resolve(flags.docs);
  await mkdir(docs, { recursive: true });
  await sideBySide(results, path.join(docs, 'ablation-grids.png'));
  const floor = results[0]?.eval.fidFloor ?? NaN;
  const command = `npm run ablation -- --steps ${flags.steps} --jobs ${flags.jobs} --eval-samples ${flags.evalSamples} --seed ${flags.seed}${flags.trainCount !== 60000 ? ` --train-count ${flags.trainCount}` : ''}`;
  const md = `# Ablation: does the Q penalty help?

Generated by \`${command}\` (code ${gitCommit().slice(0, 12)}, TF.js ${tf.version.tfjs} on ${[...new Set(results.map((r) => r.backend))].join('/')}, ${os.cpus().length} cores, ${flags.jobs} arms at a time, ${new Date().toISOString()}).

Each arm trains from the same seed (${flags.seed}: the same initial weights per architecture, the same batch order and the same latents) for the same budget of ${flags.steps} steps of batch ${DEFAULT_CONFIG.batchSize} on ${flags.trainCount} MNIST training digits, with α = β = 0.5; Q is measured with qgate's fixed extractor. Evaluation: ${flags.evalSamples} samples from a fixed seed against as many MNIST test digits, in the feature space of qgate's φ (L2-normalized LeNet conv features, 128-d projection; FID values in this space are small numbers and not comparable to Inception FIDs). The train-vs-test FID floor at this sample size is ${fmt(floor, 3)}.

${resultsTable(results)}

![final grids, same latents](ablation-grids.png)

## Reading

${'<!-- written by hand after looking at the numbers -->'}
`;
  await writeFile(path.join(docs, 'ABLATION.md'), md);
  await writeFile(path.join(docs, 'ablation.json'), JSON.stringify({ command, results }, null, 2) + '\n');
  console.log(resultsTable(results));
  console.log(`wrote ${path.join(docs, 'ABLATION.md')} and ablation-grids.png`);
}

export function ablationProgram(): Command {
  return new Command('ablation')
    .description('Train dcgan λ∈{0,0.1,0.5} and mlp λ∈{0,0.1} with the same seed and budget; write docs/ABLATION.md')
    .option('--steps <n>', 'training steps per arm', int, 3000)
    .option('--eval-samples <n>', 'evaluation samples per arm', int, 10000)
    .option('--seed <n>', 'seed shared by every arm', int, 1)
    .option('--train-count <n>', 'training digits (first n of MNIST train)', int, 60000)
    .option('--jobs <n>', 'arms trained at once, each in its own process (default: one per core)', int, Math.max(1, os.availableParallelism()))
    .option('--out <dir>', 'folder for the runs (default runs/ablation-<time>); an existing one is resumed')
    .option('--docs <dir>', 'where the table and grids go', 'docs')
    .action(ablation);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runCli(ablationProgram());
}
