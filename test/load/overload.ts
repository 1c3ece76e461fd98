/**
 * `npm run test:load`: overload of the real service (shipped models, default config) over REST
 * (autocannon) and gRPC (a grpc-js open-loop client).
 *
 * For each protocol: measure capacity (closed loop, 32 concurrent, LOAD_CAPACITY_S seconds), offer
 * 8× that rate for LOAD_OVERLOAD_S seconds (open loop), check that only 2xx/503 (REST) and
 * OK/RESOURCE_EXHAUSTED (gRPC) come back and that the server counted only OK and OVERLOADED, then
 * check that throughput is back to capacity within 5 s. Prints the figures and writes them to the
 * `load` section of docs/RELIABILITY.md. Exits 1 when a check fails.
 *
 * Client limits (what a request may cost a client before it gives up): every REST request has a
 * 10 s timeout (autocannon `timeout`), every gRPC call a 10 s deadline (CLIENT_TIMEOUT_S).
 */
import autocannon from 'autocannon';
import * as grpc from '@grpc/grpc-js';
import type { QualityServiceClient } from '../../src/generated/qgate/v1/QualityService.ts';
import { loadQgateProto } from '../../src/server/grpc.ts';
import { diffCounts, digitPng, grpcScore, closedLoop, machine, newTally, openLoop, record, requestCodes, scrape, startServer, summarize, report, type Tally } from './harness.ts';

// This process is only a load generator, and it shares the machine's cores with the service: with
// tsx's source maps on, every gRPC error the client builds (grpc-js formats a stack for each one)
// is source-mapped, which cost it several seconds of CPU per run, time taken from the service.
process.setSourceMapsEnabled(false);

const CONCURRENCY = 32;
const FACTOR = 8;
const CAPACITY_S = Number(process.env.LOAD_CAPACITY_S ?? 8);
const OVERLOAD_S = Number(process.env.LOAD_OVERLOAD_S ?? 20);
const RECOVERY_S = 5;
/** How long before autocannon's end the service's REST counters are read (see httpRun). */
const AT_END_MARGIN_MS = 1000;
/** REST timeout and gRPC deadline of every request, seconds. */
const CLIENT_TIMEOUT_S = 10;
/**
 * gRPC channels (HTTP/2 connections) the load is spread over, round robin. One connection carries
 * all of a client's calls through one HTTP/2 flow-control window (64 KiB by default in Node): the
 * service can read at most a window's worth of calls (about 160 of these) per turn of its event
 * loop, so at 8× the rest queued in the client until their deadline, and the client's cancellations
 * (an RST_STREAM each) then tripped nghttp2's rapid-reset guard (CVE-2023-44487: more than 1,000
 * resets at 33/s), whose GOAWAY(INTERNAL_ERROR) failed every call on the connection as INTERNAL. A
 * client sending thousands of calls per second uses a pool of channels; each gets its own
 * subchannel (connection) through a local subchannel pool.
 */
const GRPC_CHANNELS = 4;
/** Only one protocol (rest or grpc) while developing; both by default. */
const ONLY = process.env.LOAD_ONLY;

/** "Full" throughput: a one-second window at this fraction of the measured capacity. */
const FULL = 0.9;

interface HttpRunOptions { url: string; body: Buffer; connections: number; duration: number; overallRate?: number }

/**
 * One autocannon run, tallied per response (status, latency) like the gRPC driver. autocannon ends
 * a run by closing its connections with requests still in flight, which the service rightly counts
 * as CANCELLED though no client gave up; `atEnd`, when given, runs AT_END_MARGIN_MS before that, so
 * the service's counters can be read before the cut. (250 ms was too little once REST refusals got
 * cheap: the two /metrics scrapes queued behind the overload and were answered after the cut, which
 * then showed up as exactly `QGATE_MAX_QUEUE` + `QGATE_MAX_BATCH_SIZE` CANCELLED requests.) (Waiting for every answer instead, with
 * autocannon's `amount`, made the 20 s overload last 100 s, since autocannon could not send at the
 * rate asked.)
 */
function httpRun(o: HttpRunOptions, atEnd?: () => void): Promise<Tally & { sent: number }> {
  const t = newTally();
  t.seconds = o.duration;
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const instance = autocannon({
      url: o.url, method: 'POST', body: o.body, headers: { 'content-type': 'image/png' },
      connections: o.connections, timeout: CLIENT_TIMEOUT_S,
      duration: o.duration, ...(o.overallRate ? { overallRate: o.overallRate } : {}),
    }, (err, result) => {
      clearTimeout(endTimer);
      if (err) return reject(err);
      if (result.timeouts) t.outcomes['client-timeout'] = result.timeouts;
      resolve({ ...t, sent: result.requests.sent });
    });
    const endTimer = atEnd ? setTimeout(atEnd, o.duration * 1000 - AT_END_MARGIN_MS) : undefined;
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      record(t, String(status), status >= 200 && status < 300, ms, Date.now() - start - ms);
    });
    instance.on('reqError', (e: NodeJS.ErrnoException) => {
      // autocannon reports a timeout as an error too; it is counted once, as client-timeout.
      if (e.message === 'request timed out') return;
      const k = `client-${e.code ?? 'error'}`;
      t.outcomes[k] = (t.outcomes[k] ?? 0) + 1;
      t.details[`${k}: ${e.message}`] = (t.details[`${k}: ${e.message}`] ?? 0) + 1;
    });
  });
}

/** Seconds until the first one-second window at FULL × capacity, or undefined if none. */
function recoveredAfter(t: Tally, capacity: number): number | undefined {
  const i = t.okPerSecond.findIndex((n) => n >= FULL * capacity);
  return i < 0 ? undefined : i + 1;
}

/** Error messages with their numbers taken out, so the same cause is counted once. */
function causes(details: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(details)) {
    const key = k.replace(/\d+(\.\d+)?s\b/g, 'Ns').replace(/(remote_addr=)\S+/, '$1…').replace(/,?(name resolution|metadata filters|LB pick): Ns/g, '');
    out[key] = (out[key] ?? 0) + v;
  }
  return out;
}

/** grpc-js clients, each on its own connection (a local subchannel pool), used round robin. */
function grpcPool(target: string, n: number): { next(): QualityServiceClient; close(): void } {
  const { proto } = loadQgateProto();
  const clients = Array.from({ length: n }, () => new proto.qgate.v1.QualityService(target, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
  let i = 0;
  return { next: () => clients[i++ % n]!, close: () => clients.forEach((c) => c.close()) };
}

/** The service's event-loop lag (max, p99, s) since the last scrape: prom-client resets it on each. */
async function loopLag(base: string): Promise<{ max: number; p99: number }> {
  const one = async (f: string) => [...(await scrape(base, f)).values()][0] ?? NaN;
  return { max: await one('nodejs_eventloop_lag_max_seconds'), p99: await one('nodejs_eventloop_lag_p99_seconds') };
}

async function shedReasons(base: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [labels, v] of await scrape(base, 'qgate_scoring_shed_total')) out[/reason="([^"]*)"/.exec(labels)![1]!] = v;
  return out;
}

const fmt = (n: number) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 1 : 0) : '–');
const counts = (c: Record<string, number>) => Object.entries(c).sort().map(([k, v]) => `${k}: ${v}`).join(', ') || '–';

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  const env = machine();
  const server = await startServer();
  const png = await digitPng();
  const pool = grpcPool(server.grpcTarget, GRPC_CHANNELS);
  const score = () => grpcScore(pool.next(), png, CLIENT_TIMEOUT_S * 1000);
  const url = `${server.base}/score`;
  const failures: string[] = [];
  const rows: string[] = [];
  const notes: string[] = [];
  const explain = (what: string, details: Record<string, number>) => {
    for (const [k, v] of Object.entries(causes(details))) notes.push(`${what}: ${v} × ${k}`);
  };
  try {
    console.log('warm-up …');
    await httpRun({ url, body: png, connections: CONCURRENCY, duration: 3 });
    await closedLoop(CONCURRENCY, 2, score);

    if (ONLY !== 'grpc') {
      const httpCap = summarize(await httpRun({ url, body: png, connections: CONCURRENCY, duration: CAPACITY_S }));
      console.log(`REST capacity: ${fmt(httpCap.okPerSecond)} req/s, p50 ${httpCap.p50} ms, p99 ${httpCap.p99} ms`, httpCap.outcomes);
      const before = await requestCodes(server.base, 'http', 'score');
      const shedBefore = await shedReasons(server.base);
      await loopLag(server.base);
      const offered = Math.round(FACTOR * httpCap.okPerSecond);
      let atEnd: Promise<[{ max: number; p99: number }, Record<string, number>]> | undefined;
      const httpOver = await httpRun({ url, body: png, connections: 1024, duration: OVERLOAD_S, overallRate: offered }, () => {
        // The lag first: any scrape of /metrics resets prom-client's lag histogram.
        atEnd = loopLag(server.base).then(async (l) => [l, await requestCodes(server.base, 'http', 'score')]);
      });
      const [lag, codesAtEnd] = atEnd ? await atEnd : [await loopLag(server.base), undefined];
      const httpOverSum = summarize(httpOver);
      // Read AT_END_MARGIN_MS before autocannon cut its connections (see httpRun).
      const httpServerCodes = diffCounts(await (codesAtEnd ?? requestCodes(server.base, 'http', 'score')), before);
      const shed = diffCounts(await shedReasons(server.base), shedBefore);
      console.log(`REST at ${offered} req/s offered (${fmt(httpOver.sent / OVERLOAD_S)} sent/s): ${fmt(httpOverSum.okPerSecond)} ok/s, p50 ${httpOverSum.p50} ms, p99 ${httpOverSum.p99} ms`, httpOver.outcomes, httpServerCodes, shed, lag, causes(httpOver.details));
      const httpRec = await httpRun({ url, body: png, connections: CONCURRENCY, duration: RECOVERY_S });
      const httpRecAt = recoveredAfter(httpRec, httpCap.okPerSecond);
      console.log(`REST recovery, ok per second: ${httpRec.okPerSecond.join(' ')} → full after ${httpRecAt ?? 'never'} s`);
      for (const k of Object.keys(httpOver.outcomes)) if (!/^2\d\d$/.test(k) && k !== '503') failures.push(`REST overload: ${httpOver.outcomes[k]} × ${k}`);
      for (const k of Object.keys(httpServerCodes)) if (k !== 'OK' && k !== 'OVERLOADED') failures.push(`REST overload: server counted ${httpServerCodes[k]} × ${k}`);
      if (httpRecAt === undefined || httpRecAt > RECOVERY_S) failures.push(`REST did not recover to ${FULL * 100}% of capacity within ${RECOVERY_S} s`);
      explain('REST overload', httpOver.details);
      rows.push(
        `| REST capacity (32 connections, ${CAPACITY_S} s) | ${fmt(httpCap.okPerSecond)} | ${httpCap.p50} | ${httpCap.p99} | ${counts(httpCap.outcomes)} | | |`,
        `| REST ${FACTOR}× = ${offered} req/s offered, ${OVERLOAD_S} s (${fmt(httpOver.sent / OVERLOAD_S)} req/s actually sent, 1024 connections) | ${fmt(httpOverSum.okPerSecond)} | ${httpOverSum.p50} | ${httpOverSum.p99} | ${counts(httpOver.outcomes)} | ${counts(httpServerCodes)} | ${counts(shed)}; loop lag max ${fmt(lag.max * 1000)} ms |`,
        `| REST recovery: 2xx per second over ${RECOVERY_S} s | ${httpRec.okPerSecond.join(', ')} | | | full (≥ ${FULL * 100}%) after ${httpRecAt ?? 'never'} s | | |`,
      );
    }

    if (ONLY !== 'rest') {
      const grpcCap = summarize(await closedLoop(CONCURRENCY, CAPACITY_S, score));
      console.log(`gRPC capacity: ${fmt(grpcCap.okPerSecond)} calls/s, p50 ${grpcCap.p50} ms, p99 ${grpcCap.p99} ms`, grpcCap.outcomes);
      const before = await requestCodes(server.base, 'grpc', 'Score');
      const shedBefore = await shedReasons(server.base);
      await loopLag(server.base);
      const grpcOffered = Math.round(FACTOR * grpcCap.okPerSecond);
      const grpcOver = summarize(await openLoop(grpcOffered, OVERLOAD_S, 8192, score));
      const lag = await loopLag(server.base);
      const grpcServerCodes = diffCounts(await requestCodes(server.base, 'grpc', 'Score'), before);
      const shed = diffCounts(await shedReasons(server.base), shedBefore);
      console.log(`gRPC at ${grpcOffered} calls/s offered: ${fmt(grpcOver.okPerSecond)} ok/s, p50 ${grpcOver.p50} ms, p99 ${grpcOver.p99} ms`, grpcOver.outcomes, grpcServerCodes, shed, lag, causes(grpcOver.details));
      const grpcRec = await closedLoop(CONCURRENCY, RECOVERY_S, score);
      const grpcRecAt = recoveredAfter(grpcRec, grpcCap.okPerSecond);
      console.log(`gRPC recovery, ok per second: ${grpcRec.okPerSecond.join(' ')} → full after ${grpcRecAt ?? 'never'} s`);
      // client-backlog: calls the client itself could not send (more than 8192 outstanding), not answers.
      for (const k of Object.keys(grpcOver.outcomes)) if (k !== 'OK' && k !== 'RESOURCE_EXHAUSTED' && k !== 'client-backlog') failures.push(`gRPC overload: ${grpcOver.outcomes[k]} × ${k}`);
      for (const k of Object.keys(grpcServerCodes)) if (k !== 'OK' && k !== 'OVERLOADED') failures.push(`gRPC overload: server counted ${grpcServerCodes[k]} × ${k}`);
      if (grpcRecAt === undefined || grpcRecAt > RECOVERY_S) failures.push(`gRPC did not recover to ${FULL * 100}% of capacity within ${RECOVERY_S} s`);
      explain('gRPC overload', grpcOver.details);
      rows.push(
        `| gRPC capacity (32 concurrent calls, ${CAPACITY_S} s) | ${fmt(grpcCap.okPerSecond)} | ${grpcCap.p50} | ${grpcCap.p99} | ${counts(grpcCap.outcomes)} | | |`,
        `| gRPC ${FACTOR}× = ${grpcOffered} calls/s offered, ${OVERLOAD_S} s (open loop, ${GRPC_CHANNELS} channels) | ${fmt(grpcOver.okPerSecond)} | ${grpcOver.p50} | ${grpcOver.p99} | ${counts(grpcOver.outcomes)} | ${counts(grpcServerCodes)} | ${counts(shed)}; loop lag max ${fmt(lag.max * 1000)} ms |`,
        `| gRPC recovery: OK per second over ${RECOVERY_S} s | ${grpcRec.okPerSecond.join(', ')} | | | full (≥ ${FULL * 100}%) after ${grpcRecAt ?? 'never'} s | | |`,
      );
    }
  } finally {
    pool.close();
    const code = await server.stop();
    if (code !== 0) failures.push(`the service exited ${code} on SIGTERM after the load`);
  }

  const doc = `
Measured by \`${ONLY ? `LOAD_ONLY=${ONLY} ` : ''}npm run test:load\` on ${startedAt.slice(0, 16).replace('T', ' ')} UTC: ${env}. One \`POST /score\` / \`Score\` of a 28×28 PNG
(an MNIST test digit) per request, shipped models, default config (\`QGATE_MAX_QUEUE\` 256, \`QGATE_MAX_BATCH_SIZE\` 32,
\`QGATE_MAX_QUEUE_WAIT_MS\` 1000); every request has a ${CLIENT_TIMEOUT_S} s client timeout (REST) or deadline (gRPC); the client runs
on the same machine, so client and server share its cores.

| run | successes/s | p50 ms | p99 ms | client-side outcomes | server-side codes (\`qgate_requests_total\`; REST: until ${AT_END_MARGIN_MS / 1000} s before autocannon's end) | shed by (\`qgate_scoring_shed_total\`) |
|---|---|---|---|---|---|---|
${rows.join('\n')}

Latencies are of successful requests only.${notes.length ? ` Errors by message: ${notes.join('; ')}.` : ''} Result: ${failures.length ? `**FAILED**: ${failures.join('; ')}` : 'every check passed (only 2xx/503 and OK/RESOURCE_EXHAUSTED under overload; full throughput again within 5 s; clean exit on SIGTERM).'}
`;
  await report('load', doc, failures);
}

await main();
