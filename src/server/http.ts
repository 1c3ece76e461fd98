/**
 * The REST frontend: each handler translates HTTP into one call on QgateService and the result (or
 * QgateError) back into HTTP. Uploads go through multer (multipart) or express.raw (image/* body),
 * both bounded by QGATE_MAX_UPLOAD_BYTES.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import multer from 'multer';
import type { Registry } from 'prom-client';
import type { ServiceConfig } from '../config.ts';
import { encodePng } from '../data/images.ts';
import { isQgateError, QgateError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { validateTau } from '../quality/index.ts';
import { gridPixels, parseSeed } from './generation.ts';
import type { Metrics } from './metrics.ts';
import { openApiDocument } from './openapi.ts';
import { asQgateError, errorBody, httpStatusOf } from './errors.ts';
import type { QgateService } from './service.ts';
import type { ScoreResult } from './scoring.ts';

export interface HttpDeps {
  service: QgateService;
  config: ServiceConfig;
  metrics: Metrics;
  registry: Registry;
  log: Logger;
}

type Query = Request['query'];

function one(query: Query, name: string): string | undefined {
  const v = query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new QgateError('INVALID_ARGUMENT', `query parameter '${name}' must be given once`);
  return v;
}

function numberParam(query: Query, name: string): number | undefined {
  const raw = one(query, name);
  if (raw === undefined) return undefined;
  const n = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(n)) throw new QgateError('INVALID_ARGUMENT', `query parameter '${name}' must be a number, got ${JSON.stringify(raw.slice(0, 40))}`);
  return n;
}

/** The abort signal of a request: fires when the client goes away before the response is sent. */
function requestSignal(res: Response): AbortSignal {
  const ac = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) ac.abort(new QgateError('CANCELLED', 'the client closed the connection'));
  });
  return ac.signal;
}

function scoreBody(r: ScoreResult) {
  return {
    q: r.q, pass: r.pass, tau: r.tau,
    noise: r.noise, noiseNorm: r.noiseNorm, distance: r.distance, distanceNorm: r.distanceNorm, realism: r.realism,
    format: r.format, width: r.width, height: r.height, reference: r.reference, extractor: r.extractor,
  };
}

function sameToken(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * The refusal of a POST /score under overload, answered from the raw request before Express, its
 * body parser or its router see it. Under 8× load the REST event loop spent its turns reading and
 * refusing requests, and Node accepts one new connection per turn, so clients timed out waiting to
 * be accepted (docs/RELIABILITY.md); a refusal written here costs a fraction of one through the
 * stack. The answer is the one the handler would give: 503, Retry-After and the catalogue body,
 * counted under the same metrics. Returns true when it answered. Nothing about the request is
 * checked first: under overload a malformed one gets 503 rather than its 400.
 */
export function refuseScoreEarly(req: http.IncomingMessage, res: http.ServerResponse, deps: Pick<HttpDeps, 'service' | 'config' | 'metrics'>): boolean {
  if (req.method !== 'POST' || !(req.url === '/score' || req.url?.startsWith('/score?'))) return false;
  const refusal = deps.service.scoreRefusal();
  if (!refusal) return false;
  deps.metrics.scoringShed.inc({ reason: refusal.reason });
  deps.metrics.requests.inc({ transport: 'http', method: 'score', code: refusal.error.code });
  const body = JSON.stringify(errorBody(refusal.error));
  res.writeHead(httpStatusOf(refusal.error), {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Retry-After': String(deps.config.retryAfterSeconds),
  });
  res.end(body);
  return true;
}

export function createHttpApp(deps: HttpDeps): express.Express {
  const { service, config, metrics, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');

  const sendError = (res: Response, e: unknown, method: string): void => {
    const err = asQgateError(e);
    if (err.code === 'INTERNAL') log.error({ err: err.cause, method }, 'internal error');
    if (err.code === 'OVERLOADED' || err.code === 'UNAVAILABLE') res.set('Retry-After', String(config.retryAfterSeconds));
    res.locals.code = err.code;
    if (!res.headersSent) res.status(httpStatusOf(err)).json(errorBody(err));
    else res.destroy();
  };

  /** Wraps a handler with metrics and the error mapping; `method` names the operation in metrics. */
  const handle = (method: string, fn: (req: Request, res: Response, signal: AbortSignal) => Promise<void> | void): RequestHandler =>
    async (req, res) => {
      const end = metrics.requestDuration.startTimer({ transport: 'http', method });
      // 'close' fires also when the client went away before the response was sent.
      res.on('close', () => {
        end();
        const code = (res.locals.code as string | undefined) ?? (res.writableFinished ? 'OK' : 'CANCELLED');
        metrics.requests.inc({ transport: 'http', method, code });
      });
      try {
        await fn(req, res, requestSignal(res));
      } catch (e) {
        sendError(res, e, method);
      }
    };

  const requireAdmin = (req: Request): void => {
    if (!config.adminToken) throw new QgateError('UNAUTHORIZED', 'admin endpoints are off: set QGATE_ADMIN_TOKEN to turn them on');
    const header = req.get('authorization') ?? '';
    const match = /^Bearer (.+)$/.exec(header);
    if (!match || !sameToken(match[1]!, config.adminToken)) throw new QgateError('UNAUTHORIZED', 'a valid bearer token is required');
  };

  // Uploads. Malformed multipart bodies and multer's limits become catalogue errors, never a 500.
  const upload = (maxFiles: number): RequestHandler => {
    const parser = multer({
      storage: multer.memoryStorage(),
      limits: { fileSize: config.maxUploadBytes, files: maxFiles, fields: 16, fieldSize: 1024, parts: maxFiles + 16, headerPairs: 200 },
    }).any();
    return (req, res, next) => parser(req, res, (err?: unknown) => next(err === undefined ? undefined : uploadError(err)));
  };
  const uploadError = (err: unknown): QgateError => {
    if (err instanceof multer.MulterError) {
      if (err.code === 'LIMIT_FILE_SIZE') return new QgateError('IMAGE_TOO_LARGE', `a file is larger than the limit of ${config.maxUploadBytes} bytes`);
      if (err.code === 'LIMIT_FILE_COUNT') return new QgateError('INVALID_ARGUMENT', 'too many files in one request');
      return new QgateError('INVALID_ARGUMENT', `bad multipart body: ${err.message}`);
    }
    return new QgateError('INVALID_ARGUMENT', `bad multipart body: ${(err as Error).message ?? String(err)}`);
  };
  const rawImage = express.raw({ type: () => true, limit: config.maxUploadBytes });
  const rawBody: RequestHandler = (req, res, next) => rawImage(req, res, (err?: unknown) => {
    if (err === undefined) return next();
    const type = (err as { type?: string }).type;
    if (type === 'entity.too.large') return next(new QgateError('IMAGE_TOO_LARGE', `the body is larger than the limit of ${config.maxUploadBytes} bytes`));
    return next(new QgateError('INVALID_ARGUMENT', `cannot read the body: ${(err as Error).message}`));
  });
  /** multipart → multer; image/* → raw body; anything else is answered by the handler. */
  const body = (maxFiles: number): RequestHandler => {
    const multipart = upload(maxFiles);
    return (req, res, next) => {
      if (req.is('multipart/form-data')) return multipart(req, res, next);
      if (req.is('image/*')) return rawBody(req, res, next);
      return next();
    };
  };
  // Errors raised while reading the body reach the handler wrapper through this.
  const bodyErrors = (method: string) => (err: unknown, _req: Request, res: Response, _next: NextFunction) =>
    handle(method, () => { throw bodyError(err); })(_req, res, _next);
  /** body-parser's errors (they carry `type`) are the client's fault: never a 500. */
  const bodyError = (err: unknown): unknown => {
    if (isQgateError(err)) return err;
    const type = (err as { type?: unknown }).type;
    if (type === 'entity.too.large') return new QgateError('PAYLOAD_TOO_LARGE', 'the body is larger than its limit');
    if (typeof type === 'string') return new QgateError('INVALID_ARGUMENT', `cannot read the body: ${(err as Error).message}`);
    return err;
  };

  const files = (req: Request): Express.Multer.File[] => (Array.isArray(req.files) ? req.files : []);

  app.post('/score', body(1), bodyErrors('score'), handle('score', async (req, res, signal) => {
    const tau = numberParam(req.query, 'tau');
    let image: Buffer;
    if (req.is('multipart/form-data')) {
      const list = files(req);
      const other = list.find((f) => f.fieldname !== 'image');
      if (other) throw new QgateError('INVALID_ARGUMENT', `unexpected file field '${other.fieldname}': send the image as field 'image'`);
      if (!list[0]) throw new QgateError('IMAGE_MISSING', "no file in multipart field 'image'");
      image = list[0].buffer;
    } else if (req.is('image/*')) {
      image = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    } else {
      throw new QgateError('IMAGE_MISSING', "send the image as multipart field 'image' or as the body with an image/* Content-Type");
    }
    const result = await service.score(image, tau, signal);
    res.set('X-Qgate-Pass', String(result.pass)).json(scoreBody(result));
  }));

  app.post('/score/batch', body(config.batchMaxFiles), bodyErrors('score_batch'), handle('score_batch', async (req, res, signal) => {
    const tau = numberParam(req.query, 'tau');
    if (tau !== undefined) validateTau(tau);
    if (!req.is('multipart/form-data')) throw new QgateError('IMAGE_MISSING', `send up to ${config.batchMaxFiles} files as multipart field 'images'`);
    const list = files(req);
    const other = list.find((f) => f.fieldname !== 'images' && f.fieldname !== 'image');
    if (other) throw new QgateError('INVALID_ARGUMENT', `unexpected file field '${other.fieldname}': send the files as field 'images'`);
    if (!list.length) throw new QgateError('IMAGE_MISSING', "no file in multipart field 'images'");
    const results = await Promise.all(list.map(async (f, index) => {
      try {
        return { index, filename: f.originalname, ...scoreBody(await service.score(f.buffer, tau, signal)) };
      } catch (e) {
        const err = asQgateError(e);
        // A request-wide condition fails the whole request rather than every item alike.
        if (['OVERLOADED', 'UNAVAILABLE', 'CANCELLED', 'DEADLINE_EXCEEDED', 'INTERNAL'].includes(err.code)) throw err;
        return { index, filename: f.originalname, ...errorBody(err) };
      }
    }));
    res.json(results);
  }));

  app.get('/generate', handle('generate', async (req, res, signal) => {
    const format = one(req.query, 'format') ?? 'png';
    if (format !== 'png' && format !== 'json') throw new QgateError('INVALID_ARGUMENT', `format must be png or json, got ${JSON.stringify(format.slice(0, 20))}`);
    const n = numberParam(req.query, 'n') ?? 16;
    const result = await service.generate({
      n,
      tau: numberParam(req.query, 'tau'),
      generator: one(req.query, 'generator') || undefined,
      version: one(req.query, 'version') || undefined,
      seed: parseSeed(one(req.query, 'seed')),
    }, signal);
    res.set({
      'X-Qgate-Generator': result.generator,
      'X-Qgate-Version': result.version,
      'X-Qgate-Seed': String(result.seed),
      'X-Qgate-Attempts': String(result.attempts),
      'X-Qgate-Count': String(result.images.length),
    });
    if (format === 'json') {
      res.json({
        generator: result.generator, version: result.version, seed: result.seed, tau: result.tau,
        n, count: result.images.length, attempts: result.attempts, exhausted: result.exhausted,
        images: result.images.map((im) => ({ png: im.png.toString('base64'), q: im.q, passed: im.passed })),
      });
      return;
    }
    const shape = result.imageShape;
    const grid = gridPixels(result.images.map((im) => im.pixels), n, shape);
    res.type('image/png').send(await encodePng(grid.pixels, grid.height, grid.width, shape[2] as 1 | 3));
  }));

  app.get('/v1/generators', handle('list_generators', (_req, res) => {
    res.json({ generators: service.listGenerators() });
  }));
  app.get('/v1/generators/:name', handle('get_generator', (req, res) => {
    res.json(service.describeGenerator(String(req.params.name)));
  }));

  app.get('/v1/generators/:name/:version/metrics', handle('generator_metrics', async (req, res) => {
    res.json(await service.trainingHistory(String(req.params.name), String(req.params.version)));
  }));
  app.get('/v1/status', handle('status', (_req, res) => {
    res.json(service.status());
  }));

  const adminJson = express.json({ limit: '1kb' });
  app.put('/v1/generators/:name/pin', adminJson, bodyErrors('pin_generator'), handle('pin_generator', async (req, res) => {
    requireAdmin(req);
    const version = (req.body as { version?: unknown } | undefined)?.version;
    if (typeof version !== 'string') throw new QgateError('INVALID_ARGUMENT', 'the body must be {"version": "<version>"}');
    res.json(await service.pinGenerator(String(req.params.name), version));
  }));
  app.delete('/v1/generators/:name/pin', handle('unpin_generator', async (req, res) => {
    requireAdmin(req);
    res.json(await service.pinGenerator(String(req.params.name), null));
  }));
  app.post('/v1/generators/rescan', handle('rescan_generators', async (req, res) => {
    requireAdmin(req);
    await service.registry.rescan();
    res.json({ generators: service.listGenerators() });
  }));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', (_req, res) => {
    const ready = service.ready;
    if (!ready) res.set('Retry-After', String(config.retryAfterSeconds));
    res.status(ready ? 200 : 503).json({
      ready,
      state: service.state,
      models: {
        extractor: service.quality?.extractor.id ?? null,
        reference: service.quality?.reference.manifest.id ?? null,
        generators: service.listGenerators().filter((g) => g.active).map((g) => `${g.name}/${g.active}`),
      },
    });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(deps.registry.contentType).send(await deps.registry.metrics());
  });
  app.get('/openapi.json', (_req, res) => {
    res.json(openApiDocument(config));
  });

  // The web page (npm run build). Assets carry a content hash in their names, so they are immutable;
  // the page itself is revalidated so a rebuilt bundle is picked up at once.
  const webIndex = path.join(config.webDir, 'index.html');
  app.get('/', handle('web', (_req, res) => {
    if (!existsSync(webIndex)) throw new QgateError('NOT_FOUND', `the web page is not built (no ${webIndex}): run npm run build`);
    res.set({
      'Cache-Control': 'no-cache',
      // Everything the page needs comes from this origin; images are data: URLs (the grid) and a
      // blob: URL (the download). Inline style attributes are set by the page and by uPlot.
      'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      'X-Content-Type-Options': 'nosniff',
    }).sendFile(webIndex);
  }));
  app.use('/assets', express.static(path.join(config.webDir, 'assets'), { immutable: true, maxAge: '1y', index: false, fallthrough: true }));

  app.use(handle('not_found', (req) => {
    throw new QgateError('NOT_FOUND', `no route ${req.method} ${req.path}`);
  }));
  // Last resort (a bug in a handler that escaped the wrapper): still the catalogue's JSON shape.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = isQgateError(err) ? err : new QgateError('INTERNAL', 'internal error', { cause: err });
    if (e.code === 'INTERNAL') log.error({ err }, 'unhandled error');
    if (!res.headersSent) res.status(httpStatusOf(e)).json(errorBody(e));
  });
  return app;
}
