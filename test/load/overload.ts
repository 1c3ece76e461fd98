/**
 * `npm run test:load`: overload of the real service (shipped models, default config) over REST
 * (autocannon) and gRPC (a grpc-js open-loop client).
 *
 * For each protocol: measure capacity (closed loop, 32 concurrent, LOAD_CAPACITY_S seconds), offer
 * 8× that rate for LOAD_OVERLOAD_S seconds (open loop), check that only 2xx/503 (REST) and
 * OK/RESOURCE_EXHAUSTED (gRPC) come back and that the server counted only OK and OVERLOADED, then
 * check that throughput is back to capacity within 5 s. Prints the figures and writes them to the
 * `load` section of docs/RELIABILITY.md. Exits 1 when a check fails.
 */
import autocannon from 'autocannon';
import { diffCounts, digitPng, grpcClient, grpcScore, closedLoop, machine, newTally, openLoop, record, requestCodes, startServer, summarize, writeDocSection, type Tally } from './harness.ts';

const CONCURRENCY = 32;
const FACTOR = 8;
const CAPACITY_S = Number(process.env.LOAD_CAPACITY_S ?? 8);
const OVERLOAD_S = Number(process.env.LOAD_OVERLOAD_S ?? 20);
const RECOVERY_S = 5;
/** "Full" throughput: a one-second window at this fraction of the measured capacity. */
const FULL = 0.9;

interface HttpRunOptions { url: string; body: Buffer; connections: number; duration: number; overallRate?: number }

/** One autocannon run, tallied per response (status, latency) like the gRPC driver. */
function httpRun(o: HttpRunOptions): Promise<Tally & { sent: number }> {
  const t = newTally();
  t.seconds = o.duration;
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const instance = autocannon({
      url: o.url, method: 'POST', body: o.body, headers: { 'content-type': 'image/png' },
      connections: o.connections, duration: o.duration, timeout: 10,
      ...(o.overallRate ? { overallRate: o.overallRate } : {}),
    }, (err, result) => {
      if (err) return reject(err);
      if (result.timeouts) t.outcomes['client-timeout'] = result.timeouts;
      resolve({ ...t, sent: result.requests.sent });
    });
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      record(t, String(status), status >= 200 && status < 300, ms, Date.now() - start - ms);
    });
    instance.on('reqError', (e: NodeJS.ErrnoException) => {
      t.outcomes[`client-${e.code ?? 'error'}`] = (t.outcomes[`client-${e.code ?? 'error'}`] ?? 0) + 1;
    });
  });
}

/** Seconds until the first one-second window at FULL × capacity, or undefined if none. */
function recoveredAfter(t: Tally, capacity: number): number | undefined {
  const i = t.okPerSecond.findIndex((n) => n >= FULL * capacity);
  return i < 0 ? undefined : i + 1;
}

const fmt = (n: number) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 1 : 0) : '–');
const counts = (c: Record<string, number>) => Object.entries(c).sort().map(([k, v]) => `${k}: ${v}`).join(', ') || '–';

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  const env = machine();
  const server = await startServer();
  const png = await digitPng();
  const client = grpcClient(server.grpcTarget);
  const url = `${server.base}/score`;
  const failures: string[] = [];
  const rows: string[] = [];
  try {
    console.log('warm-up …');
    await httpRun({ url, body: png, connections: CONCURRENCY, duration: 3 });
    await closedLoop(CONCURRENCY, 2, () => grpcScore(client, png));

    // REST.
    const httpCap = summarize(await httpRun({ url, body: png, connections: CONCURRENCY, duration: CAPACITY_S }));
    console.log(`REST capacity: ${fmt(httpCap.okPerSecond)} req/s, p50 ${httpCap.p50} ms, p99 ${httpCap.p99} ms`, httpCap.outcomes);
    let before = await requestCodes(server.base, 'http', 'score');
    const offered = Math.round(FACTOR * httpCap.okPerSecond);
    const httpOver = await httpRun({ url, body: png, connections: 1024, duration: OVERLOAD_S, overallRate: offered });
    const httpOverSum = summarize(httpOver);
    const httpServerCodes = diffCounts(await requestCodes(server.base, 'http', 'score'), before);
    console.log(`REST at ${offered} req/s offered (${fmt(httpOver.sent / OVERLOAD_S)} sent/s): ${fmt(httpOverSum.okPerSecond)} ok/s, p50 ${httpOverSum.p50} ms, p99 ${httpOverSum.p99} ms`, httpOver.outcomes, httpServerCodes);
    const httpRec = await httpRun({ url, body: png, connections: CONCURRENCY, duration: RECOVERY_S });
    const httpRecAt = recoveredAfter(httpRec, httpCap.okPerSecond);
    console.log(`REST recovery, ok per second: ${httpRec.okPerSecond.join(' ')} → full after ${httpRecAt ?? 'never'} s`);
    for (const k of Object.keys(httpOver.outcomes)) if (!/^2\d\d$/.test(k) && k !== '503') failures.push(`REST overload: ${httpOver.outcomes[k]} × ${k}`);
    for (const k of Object.keys(httpServerCodes)) if (k !== 'OK' && k !== 'OVERLOADED') failures.push(`REST overload: server counted ${httpServerCodes[k]} × ${k}`);
    if (httpRecAt === undefined || httpRecAt > RECOVERY_S) failures.push(`REST did not recover to ${FULL * 100}% of capacity within ${RECOVERY_S} s`);

    // gRPC.
    const grpcCap = summarize(await closedLoop(CONCURRENCY, CAPACITY_S, () => grpcScore(client, png)));
    console.log(`gRPC capacity: ${fmt(grpcCap.okPerSecond)} calls/s, p50 ${grpcCap.p50} ms, p99 ${grpcCap.p99} ms`, grpcCap.outcomes);
    before = await requestCodes(server.base, 'grpc', 'Score');
    const grpcOffered = Math.round(FACTOR * grpcCap.okPerSecond);
    const grpcOver = summarize(await openLoop(grpcOffered, OVERLOAD_S, 8192, () => grpcScore(client, png)));
    const grpcServerCodes = diffCounts(await requestCodes(server.base, 'grpc', 'Score'), before);
    console.log(`gRPC at ${grpcOffered} calls/s offered: ${fmt(grpcOver.okPerSecond)} ok/s, p50 ${grpcOver.p50} ms, p99 ${grpcOver.p99} ms`, grpcOver.outcomes, grpcServerCodes);
    const grpcRec = await closedLoop(CONCURRENCY, RECOVERY_S, () => grpcScore(client, png));
    const grpcRecAt = recoveredAfter(grpcRec, grpcCap.okPerSecond);
    console.log(`gRPC recovery, ok per second: ${grpcRec.okPerSecond.join(' ')} → full after ${grpcRecAt ?? 'never'} s`);
    // client-backlog: calls the client itself could not send (more than 8192 outstanding), not answers.
    for (const k of Object.keys(grpcOver.outcomes)) if (k !== 'OK' && k !== 'RESOURCE_EXHAUSTED' && k !== 'client-backlog') failures.push(`gRPC overload: ${grpcOver.outcomes[k]} × ${k}`);
    for (const k of Object.keys(grpcServerCodes)) if (k !== 'OK' && k !== 'OVERLOADED') failures.push(`gRPC overload: server counted ${grpcServerCodes[k]} × ${k}`);
    if (grpcRecAt === undefined || grpcRecAt > RECOVERY_S) failures.push(`gRPC did not recover to ${FULL * 100}% of capacity within ${RECOVERY_S} s`);

    rows.push(
      `| REST capacity (32 connections, ${CAPACITY_S} s) | ${fmt(httpCap.okPerSecond)} | ${httpCap.p50} | ${httpCap.p99} | ${counts(httpCap.outcomes)} | |`,
      `| REST ${FACTOR}× = ${offered} req/s offered, ${OVERLOAD_S} s (${fmt(httpOver.sent / OVERLOAD_S)} req/s actually sent, 1024 connections) | ${fmt(httpOverSum.okPerSecond)} | ${httpOverSum.p50} | ${httpOverSum.p99} | ${counts(httpOver.outcomes)} | ${counts(httpServerCodes)} |`,
      `| REST recovery: 2xx per second over ${RECOVERY_S} s | ${httpRec.okPerSecond.join(', ')} | | | full (≥ ${FULL * 100}%) after ${httpRecAt ?? 'never'} s | |`,
      `| gRPC capacity (32 concurrent calls, ${CAPACITY_S} s) | ${fmt(grpcCap.okPerSecond)} | ${grpcCap.p50} | ${grpcCap.p99} | ${counts(grpcCap.outcomes)} | |`,
      `| gRPC ${FACTOR}× = ${grpcOffered} calls/s offered, ${OVERLOAD_S} s (open loop) | ${fmt(grpcOver.okPerSecond)} | ${grpcOver.p50} | ${grpcOver.p99} | ${counts(grpcOver.outcomes)} | ${counts(grpcServerCodes)} |`,
      `| gRPC recovery: OK per second over ${RECOVERY_S} s | ${grpcRec.okPerSecond.join(', ')} | | | full (≥ ${FULL * 100}%) after ${grpcRecAt ?? 'never'} s | |`,
    );
  } finally {
    client.close();
    const code = await server.stop();
    if (code !== 0) failures.push(`the service exited ${code} on SIGTERM after the load`);
  }

  const doc = `
Measured by \`npm run test:load\` on ${startedAt.slice(0, 16).replace('T', ' ')} UTC: ${env}. One \`POST /score\` / \`Score\` of a 28×28 PNG
(an MNIST test digit) per request, shipped models, default config (\`QGATE_MAX_QUEUE\` 256, \`QGATE_MAX_BATCH_SIZE\` 32); the
client runs on the same machine, so client and server share its cores.

| run | successes/s | p50 ms | p99 ms | client-side outcomes | server-side codes (\`qgate_requests_total\`) |
|---|---|---|---|---|---|
${rows.join('\n')}

Latencies are of successful requests only. Result: ${failures.length ? `**FAILED**: ${failures.join('; ')}` : 'every check passed (only 2xx/503 and OK/RESOURCE_EXHAUSTED under overload; full throughput again within 5 s; clean exit on SIGTERM).'}
`;
  console.log(doc);
  await writeDocSection('load', doc);
  if (failures.length) {
    console.error(`FAILED:\n- ${failures.join('\n- ')}`);
    process.exitCode = 1;
  }
}

await main();
