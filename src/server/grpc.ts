/**
 * The gRPC frontend for qgate.v1.QualityService: each handler translates one call into a call on
 * QgateService, and QgateErrors into gRPC statuses (with the stable code in the `qgate-error-code`
 * trailer). The service attaches itself with addToServer(server); the composition root owns the
 * server.
 */
import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from '../generated/qgate.ts';
import type { GenerateRequest__Output } from '../generated/qgate/v1/GenerateRequest.ts';
import type { GenerateResponse } from '../generated/qgate/v1/GenerateResponse.ts';
import type { QualityServiceHandlers } from '../generated/qgate/v1/QualityService.ts';
import type { ScoreResponse } from '../generated/qgate/v1/ScoreResponse.ts';
import type { ScoreRequest__Output } from '../generated/qgate/v1/ScoreRequest.ts';
import type { ScoreStreamResponse } from '../generated/qgate/v1/ScoreStreamResponse.ts';
import { QgateError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { asQgateError, grpcStatusOf } from './errors.ts';
import { parseSeed, type GenerateChunk, type GenerateParams } from './generation.ts';
import type { Metrics } from './metrics.ts';
import type { QgateService } from './service.ts';
import type { ScoreResult } from './scoring.ts';

export const PROTO_PATH = fileURLToPath(new URL('../../proto/qgate/v1/qgate.proto', import.meta.url));
export const SERVICE_NAME = 'qgate.v1.QualityService';

/** The options the types in src/generated were generated with (see `npm run proto:gen`); clients use them too. */
export const PROTO_OPTIONS: protoLoader.Options = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };

export function loadQgateProto(): { definition: protoLoader.PackageDefinition; proto: ProtoGrpcType } {
  const definition = protoLoader.loadSync(PROTO_PATH, PROTO_OPTIONS);
  return { definition, proto: grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType };
}

export function toServiceError(e: unknown, retryAfterSeconds: number): Partial<grpc.StatusObject> {
  const err = asQgateError(e);
  const metadata = new grpc.Metadata();
  metadata.set('qgate-error-code', err.code);
  if (err.code === 'OVERLOADED' || err.code === 'UNAVAILABLE') metadata.set('retry-after', String(retryAfterSeconds));
  return { code: grpcStatusOf(err), details: err.message, metadata };
}

function scoreMessage(r: ScoreResult): ScoreResponse {
  return {
    q: r.q, passed: r.pass, tau: r.tau,
    noise: r.noise, noiseNorm: r.noiseNorm, distance: r.distance, distanceNorm: r.distanceNorm, realism: r.realism,
    format: r.format, width: r.width, height: r.height, reference: r.reference, extractor: r.extractor,
  };
}

function generateMessage(c: GenerateChunk): GenerateResponse {
  return {
    images: c.images.map((im) => ({ png: im.png, q: im.q, passed: im.passed })),
    attempts: c.attempts, generator: c.generator, version: c.version, seed: String(c.seed), tau: c.tau,
  };
}

function generateParams(r: GenerateRequest__Output): GenerateParams {
  return {
    n: r.n,
    tau: r.tau,
    generator: r.generator || undefined,
    version: r.version || undefined,
    seed: parseSeed(r.seed),
  };
}

/**
 * Aborts when the call's deadline passes or the client cancels; `deadline` (ms, Date.now's clock;
 * undefined without one) lets admission refuse at once what could not be answered in time.
 */
type AnyServerCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

/** ms from now to the call's deadline (Infinity without one). */
function msToDeadline(call: AnyServerCall): number {
  const deadline = call.getDeadline();
  return deadline instanceof Date ? deadline.getTime() - Date.now() : Number.isFinite(deadline) ? deadline - Date.now() : Infinity;
}

function callSignal(call: AnyServerCall): { signal: AbortSignal; deadline: number | undefined; done(): void } {
  const ac = new AbortController();
  const ms = msToDeadline(call);
  const timer = Number.isFinite(ms)
    ? setTimeout(() => ac.abort(new QgateError('DEADLINE_EXCEEDED', 'the call deadline passed')), Math.max(0, ms))
    : undefined;
  // grpc-js reports a passed deadline as 'cancelled' too (often before our timer): tell them apart.
  const at = Date.now() + ms;
  (call as NodeJS.EventEmitter).on('cancelled', () => ac.abort(Date.now() >= at - 5
    ? new QgateError('DEADLINE_EXCEEDED', 'the call deadline passed')
    : new QgateError('CANCELLED', 'the client cancelled the call')));
  return { signal: ac.signal, deadline: Number.isFinite(at) ? at : undefined, done: () => clearTimeout(timer) };
}

export interface GrpcDeps {
  service: QgateService;
  metrics: Metrics;
  log: Logger;
  retryAfterSeconds: number;
}

export function createQualityService(deps: GrpcDeps): QualityServiceHandlers {
  const { service, metrics, retryAfterSeconds } = deps;
  const observe = (method: string) => {
    const end = metrics.requestDuration.startTimer({ transport: 'grpc', method });
    return (code: string) => {
      end();
      metrics.requests.inc({ transport: 'grpc', method, code });
      if (code === 'INTERNAL') deps.log.error({ method }, 'internal error in gRPC handler');
    };
  };

  return {
    async Score(call, callback) {
      // Overload is refused before anything is set up for the call (its abort signal, deadline
      // timer and duration timer): at 8× load most calls end here, and each one costs the thread
      // that also reads every other call. The answer and the counters are the ones service.score's
      // refusal would give (as refuseScoreEarly does for REST). A call with an invalid tau takes
      // the normal path, which answers INVALID_ARGUMENT.
      const tau = call.request.tau;
      if (tau === undefined || (Number.isFinite(tau) && tau > 0 && tau <= 1)) {
        const ms = msToDeadline(call);
        const refusal = service.scoreRefusal(Number.isFinite(ms) ? Date.now() + ms : undefined);
        if (refusal) {
          metrics.scoringShed.inc({ reason: refusal.reason });
          metrics.requests.inc({ transport: 'grpc', method: 'Score', code: refusal.error.code });
          callback(toServiceError(refusal.error, retryAfterSeconds));
          return;
        }
      }
      const done = observe('Score');
      const { signal, deadline, done: clear } = callSignal(call);
      try {
        const result = await service.score(call.request.image, call.request.tau, signal, deadline);
        done('OK');
        callback(null, scoreMessage(result));
      } catch (e) {
        done(asQgateError(e).code);
        callback(toServiceError(e, retryAfterSeconds));
        return;
      } finally {
        clear();
      }
    },

    ScoreStream(call) {
      const done = observe('ScoreStream');
      const { signal, deadline, done: clear } = callSignal(call);
      // Requests are scored concurrently (so they share batches) but answered in request order.
      let index = 0;
      let inFlight = 0;
      let ended = false;
      let writes: Promise<void> = Promise.resolve();
      const maxInFlight = 32;
      const finish = () => {
        if (ended && inFlight === 0) {
          clear();
          done('OK');
          call.end();
        }
      };
      call.on('data', (req: ScoreRequest__Output) => {
        const i = index++;
        inFlight++;
        if (inFlight >= maxInFlight) call.pause();
        const scored = service.score(req.image, req.tau, signal, deadline).then(
          (r): ScoreStreamResponse => ({ index: i, score: scoreMessage(r) }),
          (e: unknown): ScoreStreamResponse => {
            const err = asQgateError(e);
            return { index: i, error: { code: err.code, message: err.message } };
          },
        );
        writes = writes.then(async () => {
          const msg = await scored;
          if (!signal.aborted) call.write(msg);
          inFlight--;
          if (inFlight < maxInFlight) call.resume();
          finish();
        });
      });
      call.on('end', () => {
        ended = true;
        void writes.then(finish);
      });
      call.on('error', () => clear());
    },

    async Generate(call, callback) {
      const done = observe('Generate');
      const { signal, done: clear } = callSignal(call);
      try {
        const result = await service.generate(generateParams(call.request), signal);
        done('OK');
        callback(null, generateMessage(result));
      } catch (e) {
        done(asQgateError(e).code);
        callback(toServiceError(e, retryAfterSeconds));
        return;
      } finally {
        clear();
      }
    },

    async GenerateStream(call) {
      const done = observe('GenerateStream');
      const { signal, done: clear } = callSignal(call);
      try {
        for await (const chunk of service.generateStream(generateParams(call.request), signal)) {
          if (signal.aborted) break; // the generator notices on its next step and throws
          if (!call.write(generateMessage(chunk))) {
            // A cancelled call never drains: wait for whichever comes first.
            await new Promise<void>((resolve) => {
              call.once('drain', resolve);
              signal.addEventListener('abort', () => resolve(), { once: true });
            });
          }
        }
        if (signal.aborted) throw signal.reason;
        done('OK');
        call.end();
      } catch (e) {
        done(asQgateError(e).code);
        call.emit('error', toServiceError(e, retryAfterSeconds));
        return;
      } finally {
        clear();
      }
    },
  };
}

/**
 * Gives every HTTP/2 connection the gRPC server accepts a connection-level flow-control window of
 * `bytes`. HTTP/2 starts each connection at 64 KiB, shared by the request bodies of all its calls:
 * about 150 Score calls of a small image. A client with thousands of calls open on a connection
 * (8× overload in `npm run test:load`) could deliver their headers but not their bodies, so the
 * calls waited in the client, where admission could not refuse them, some until their deadline
 * (docs/RELIABILITY.md, Overload). With a larger window the service reads them and refuses what
 * it cannot serve at once. The cost: a connection may hold up to `bytes` of request data the
 * service has not read yet (grpc-js reads a unary call's message as it arrives, and each message
 * stays bounded by grpc.max_receive_message_length).
 *
 * grpc-js has no server option for it (only its client has `grpc-node.flow_control_window`) and
 * keeps its node:http2 servers private: bindAsync puts them in `http2Servers`, a Map keyed by the
 * server, with each one's open sessions. This reads that map, so it must run after bindAsync; it
 * returns how many HTTP/2 servers it reached (0 if a grpc-js upgrade moved them: the caller warns,
 * and test/server-grpc.test.ts checks the window a client is given).
 */
export function setConnectionWindow(server: grpc.Server, bytes: number): number {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) return 0;
  const apply = (session: ServerHttp2Session) => {
    try {
      if (!session.destroyed) session.setLocalWindowSize(bytes);
    } catch {
      // The session closed meanwhile: nothing to widen.
    }
  };
  let reached = 0;
  for (const [h2, info] of servers as Map<unknown, { sessions?: unknown }>) {
    if (typeof (h2 as Partial<Http2Server> | null)?.on !== 'function') continue;
    (h2 as Http2Server).on('session', apply);
    if (info.sessions instanceof Set) for (const session of info.sessions as Set<ServerHttp2Session>) apply(session);
    reached++;
  }
  return reached;
}

/** Attaches qgate.v1.QualityService to a server. */
export function addToServer(server: grpc.Server, definition: protoLoader.PackageDefinition, deps: GrpcDeps): void {
  const proto = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  server.addService(proto.qgate.v1.QualityService.service, createQualityService(deps) as unknown as grpc.UntypedServiceImplementation);
}
