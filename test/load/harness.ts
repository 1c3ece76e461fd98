/**
 * Shared pieces of `npm run test:load` and `npm run test:soak`: the real service in a child process
 * (`src/main.ts` over the shipped models, bound to 127.0.0.1 on free ports), a gRPC client, metric
 * scraping, an open-loop gRPC driver, latency summaries, and writing a section of
 * docs/RELIABILITY.md. All traffic goes to 127.0.0.1 and every loop is bounded in time or count.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { encodePng } from '../../src/data/images.ts';
import { loadMnist } from '../../src/data/mnist.ts';
import type { QualityServiceClient } from '../../src/generated/qgate/v1/QualityService.ts';
import { loadQgateProto } from '../../src/server/grpc.ts';

export interface Server {
  base: string;
  grpcTarget: string;
  child: ChildProcess;
  log(): string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** `nodeArgs`: extra Node flags for the service (e.g. --cpu-prof while looking for a bottleneck). */
export async function startServer(env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<Server> {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, QGATE_HOST: '127.0.0.1', QGATE_HTTP_PORT: '0', QGATE_GRPC_PORT: '0', QGATE_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const until = Date.now() + 120_000;
  let ports: RegExpExecArray | null;
  while (!(ports = /"httpPort":(\d+),"grpcPort":(\d+)/.exec(log))) {
    if (Date.now() > until || child.exitCode !== null) throw new Error(`the service did not start:\n${log}`);
    await sleep(100);
  }
  const base = `http://127.0.0.1:${ports[1]}`;
  while ((await fetch(`${base}/readyz`).catch(() => undefined))?.status !== 200) {
    if (Date.now() > until) throw new Error(`the service did not become ready:\n${log}`);
    await sleep(200);
  }
  return {
    base, grpcTarget: `127.0.0.1:${ports[2]}`, child, log: () => log,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

export function grpcClient(target: string): QualityServiceClient {
  const { proto } = loadQgateProto();
  return new proto.qgate.v1.QualityService(target, grpc.credentials.createInsecure());
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The first MNIST test digit as a PNG: a typical, valid request. */
export function digitPng(index = 0): Promise<Buffer> {
  return encodePng(loadMnist('test', { offset: index, limit: 1 }).images, 28, 28, 1);
}

/** Every sample of one metric family as `labels → value` (labels as written, '' for none). */
export async function scrape(base: string, family: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === family) out.set(m[2] ?? '', Number(m[3]));
  }
  return out;
}

/** qgate_requests_total by catalogue code for one transport and method. */
export async function requestCodes(base: string, transport: string, method: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [labels, v] of await scrape(base, 'qgate_requests_total')) {
    if (!labels.includes(`transport="${transport}"`) || !labels.includes(`method="${method}"`)) continue;
    out[/code="([^"]*)"/.exec(labels)![1]!] = v;
  }
  return out;
}

export function diffCounts(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export interface Tally {
  /** Outcome (HTTP status or gRPC status name, or a client-side error) → count. */
  outcomes: Record<string, number>;
  /** For outcomes that are not allowed: `outcome: message` → count, to say where an error came from. */
  details: Record<string, number>;
  /** Latencies of successful requests, ms. */
  okMs: number[];
  /** Successful requests per whole second since the start. */
  okPerSecond: number[];
  seconds: number;
}

export function newTally(): Tally {
  return { outcomes: {}, details: {}, okMs: [], okPerSecond: [], seconds: 0 };
}

export function record(t: Tally, outcome: string, ok: boolean, ms: number, sinceStartMs: number, detail?: string): void {
  t.outcomes[outcome] = (t.outcomes[outcome] ?? 0) + 1;
  if (detail !== undefined) t.details[`${outcome}: ${detail}`] = (t.details[`${outcome}: ${detail}`] ?? 0) + 1;
  if (!ok) return;
  t.okMs.push(ms);
  const s = Math.floor(sinceStartMs / 1000);
  while (t.okPerSecond.length <= s) t.okPerSecond.push(0);
  t.okPerSecond[s]!++;
}

export function summarize(t: Tally): { okPerSecond: number; p50: number; p99: number; outcomes: Record<string, number>; details: Record<string, number> } {
  const sorted = [...t.okMs].sort((a, b) => a - b);
  return { okPerSecond: t.okMs.length / t.seconds, p50: Math.round(percentile(sorted, 50)), p99: Math.round(percentile(sorted, 99)), outcomes: t.outcomes, details: t.details };
}

/**
 * Calls `fire` at `rate` per second (open loop: the offered rate does not wait for answers) for
 * `seconds`, with at most `maxOutstanding` calls waiting (beyond it a call is counted as
 * 'client-backlog' and not sent). Resolves when every call sent has been answered.
 */
export async function openLoop(rate: number, seconds: number, maxOutstanding: number, fire: () => Promise<Outcome>): Promise<Tally> {
  const t = newTally();
  t.seconds = seconds;
  const start = Date.now();
  let sent = 0;
  let outstanding = 0;
  const pending = new Set<Promise<void>>();
  while (Date.now() - start < seconds * 1000) {
    const due = Math.floor(((Date.now() - start) / 1000) * rate);
    while (sent < due) {
      sent++;
      if (outstanding >= maxOutstanding) {
        record(t, 'client-backlog', false, 0, 0);
        continue;
      }
      outstanding++;
      const t0 = Date.now();
      const p: Promise<void> = fire().then(({ outcome, ok, detail }) => record(t, outcome, ok, Date.now() - t0, t0 - start, detail)).finally(() => {
        outstanding--;
        pending.delete(p);
      });
      pending.add(p);
    }
    await sleep(5);
  }
  await Promise.all(pending);
  return t;
}

/** Calls `fire` from `concurrency` loops for `seconds` (closed loop: each waits for its answer). */
export async function closedLoop(concurrency: number, seconds: number, fire: () => Promise<Outcome>): Promise<Tally> {
  const t = newTally();
  t.seconds = seconds;
  const start = Date.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() - start < seconds * 1000) {
      const t0 = Date.now();
      const { outcome, ok, detail } = await fire();
      record(t, outcome, ok, Date.now() - t0, t0 - start, detail);
    }
  }));
  return t;
}

/** What one call came back with; `detail` (the error's message) only for outcomes worth explaining. */
export interface Outcome { outcome: string; ok: boolean; detail?: string }

/** One gRPC Score call as a driver outcome. */
export function grpcScore(client: QualityServiceClient, image: Buffer, deadlineMs = 10_000): Promise<Outcome> {
  return new Promise((resolve) => {
    client.Score({ image }, { deadline: Date.now() + deadlineMs }, (err) => {
      if (!err) return resolve({ outcome: 'OK', ok: true });
      const outcome = grpc.status[err.code] ?? String(err.code);
      resolve({ outcome, ok: false, ...(err.code === grpc.status.RESOURCE_EXHAUSTED ? {} : { detail: err.details }) });
    });
  });
}

/** The machine, for the record next to each figure. */
export function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at the start`;
}

/** Replaces the text between `<!-- name:begin -->` and `<!-- name:end -->` in docs/RELIABILITY.md. */
export async function writeDocSection(name: string, body: string, file = 'docs/RELIABILITY.md'): Promise<void> {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  let doc = await readFile(file, 'utf8').catch(() => '');
  const block = `${begin}\n${body.trim()}\n${end}`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  doc = i >= 0 && j > i ? doc.slice(0, i) + block + doc.slice(j + end.length) : `${doc.trimEnd()}\n\n${block}\n`;
  await writeFile(file, doc);
}

/** Prints a script's doc section, writes it into docs/RELIABILITY.md, and sets exit code 1 on failures. */
export async function report(section: string, doc: string, failures: string[]): Promise<void> {
  console.log(doc);
  await writeDocSection(section, doc);
  if (failures.length) {
    console.error(`FAILED:\n- ${failures.join('\n- ')}`);
    process.exitCode = 1;
  }
}
