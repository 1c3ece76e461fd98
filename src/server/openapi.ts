/**
 * The OpenAPI 3 document of the REST API, served at /openapi.json. test/server-http.test.ts checks
 * that its paths and methods are exactly the routes express serves.
 */
import type { ServiceConfig } from '../config.ts';
import { ErrorCodes } from '../errors.ts';

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object) => ({ 'application/json': { schema } });
const errorResponse = (description: string) => ({ description, content: json(ref('Error')) });

const tauParam = {
  name: 'tau', in: 'query', required: false,
  description: 'The gate: an image passes when q < tau. 0 < tau ≤ 1; default QGATE_TAU (0.3).',
  schema: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
};
const nameParam = { name: 'name', in: 'path', required: true, schema: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' } };
const admin = { security: [{ bearer: [] }] };
const common = {
  '400': errorResponse('Bad argument or bad image (IMAGE_UNDECODABLE, IMAGE_MISSING, INVALID_ARGUMENT)'),
  '503': errorResponse('OVERLOADED (queue full, with Retry-After) or UNAVAILABLE (starting or draining)'),
};

export function openApiDocument(config: ServiceConfig): object {
  const imageLimits = `At most ${config.maxUploadBytes} bytes and ${config.maxPixels} pixels (413 IMAGE_TOO_LARGE); SVG, PDF and other non-raster formats are refused (415 UNSUPPORTED_FORMAT).`;
  return {
    openapi: '3.0.3',
    info: {
      title: 'qgate',
      version: '1',
      description: 'Image-quality scoring and gated generation. Q ∈ [0,1], lower is better; an image passes when Q < τ. The same API over gRPC: proto/qgate/v1/qgate.proto.',
    },
    paths: {
      '/score': {
        post: {
          summary: 'Score one image',
          description: `The image is the multipart field \`image\` or the raw body with an image/* Content-Type. ${imageLimits}`,
          parameters: [tauParam],
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': { schema: { type: 'object', required: ['image'], properties: { image: { type: 'string', format: 'binary' } } } },
              'image/*': { schema: { type: 'string', format: 'binary' } },
            },
          },
          responses: {
            '200': {
              description: 'The score; the header X-Qgate-Pass carries the gate result',
              headers: { 'X-Qgate-Pass': { schema: { type: 'string', enum: ['true', 'false'] } } },
              content: json(ref('Score')),
            },
            ...common,
            '413': errorResponse('IMAGE_TOO_LARGE'),
            '415': errorResponse('UNSUPPORTED_FORMAT'),
          },
        },
      },
      '/score/batch': {
        post: {
          summary: 'Score several images',
          description: `Up to ${config.batchMaxFiles} files in the multipart field \`images\`. The answer is an array in the same order; an image that cannot be scored gets an \`error\` in its item. ${imageLimits}`,
          parameters: [tauParam],
          requestBody: {
            required: true,
            content: { 'multipart/form-data': { schema: { type: 'object', properties: { images: { type: 'array', items: { type: 'string', format: 'binary' } } } } } },
          },
          responses: {
            '200': {
              description: 'One item per file, in order',
              content: json({
                type: 'array',
                items: {
                  oneOf: [
                    { allOf: [ref('Score'), { type: 'object', properties: { index: { type: 'integer' }, filename: { type: 'string' } } }] },
                    { allOf: [ref('Error'), { type: 'object', properties: { index: { type: 'integer' }, filename: { type: 'string' } } }] },
                  ],
                },
              }),
            },
            ...common,
            '413': errorResponse('A file over the size limit'),
          },
        },
      },
      '/generate': {
        get: {
          summary: 'Sample images from a generator',
          description: `n at most ${config.generateMaxN}. With tau, only images with q < tau are returned; at most n × ${config.generateMaxAttemptsPerImage} samples are drawn, and when that bound is hit the answer holds the images that passed (X-Qgate-Count < n, exhausted: true).`,
          parameters: [
            { name: 'n', in: 'query', schema: { type: 'integer', minimum: 1, maximum: config.generateMaxN, default: 16 } },
            tauParam,
            { name: 'seed', in: 'query', schema: { type: 'integer', minimum: 0, maximum: 4294967295 } },
            { name: 'generator', in: 'query', schema: { type: 'string' }, description: 'Default: QGATE_DEFAULT_GENERATOR, else the first by name' },
            { name: 'version', in: 'query', schema: { type: 'string' }, description: 'Default: the active (pinned or newest) version' },
            { name: 'format', in: 'query', schema: { type: 'string', enum: ['png', 'json'], default: 'png' } },
          ],
          responses: {
            '200': {
              description: 'A PNG grid of ceil(√n) columns (cells past the last image are black), or JSON with format=json',
              headers: Object.fromEntries(['X-Qgate-Generator', 'X-Qgate-Version', 'X-Qgate-Seed', 'X-Qgate-Attempts', 'X-Qgate-Count'].map((h) => [h, { schema: { type: 'string' } }])),
              content: { 'image/png': { schema: { type: 'string', format: 'binary' } }, ...json(ref('Generated')) },
            },
            ...common,
            '404': errorResponse('Unknown generator or version (NOT_FOUND)'),
          },
        },
      },
      '/v1/generators': {
        get: { summary: 'List generators', responses: { '200': { description: 'All generators', content: json({ type: 'object', properties: { generators: { type: 'array', items: ref('GeneratorInfo') } } }) } } },
      },
      '/v1/generators/{name}': {
        get: {
          summary: 'One generator: its versions, the active one, manifests and metrics',
          parameters: [nameParam],
          responses: { '200': { description: 'The generator', content: json(ref('GeneratorInfo')) }, '404': errorResponse('NOT_FOUND') },
        },
      },
      '/v1/generators/{name}/{version}/metrics': {
        get: {
          summary: "A published version's training history: the run's metrics.jsonl, if the trainer copied it into the version folder",
          description: 'Lines as the trainer wrote them: step lines {step, epoch, lossD, lossG, q, noise, distance, stepMs}, {type: "fid"} lines per epoch and one {type: "eval"} line. available is false (and lines empty) when the version has no metrics.jsonl. Step lines beyond 2000 are thinned evenly.',
          parameters: [nameParam, { name: 'version', in: 'path', required: true, schema: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' } }],
          responses: {
            '200': {
              description: 'The history',
              content: json({
                type: 'object', required: ['generator', 'version', 'available', 'lines'],
                properties: {
                  generator: { type: 'string' }, version: { type: 'string' }, available: { type: 'boolean' },
                  lines: { type: 'array', items: { type: 'object', additionalProperties: true } },
                  thinned: { type: 'integer' }, skipped: { type: 'integer', description: 'Lines that were not JSON objects' },
                },
              }),
            },
            '400': errorResponse('Bad name or version (INVALID_ARGUMENT)'),
            '404': errorResponse('Unknown generator or version (NOT_FOUND)'),
          },
        },
      },
      '/v1/generators/{name}/pin': {
        put: {
          summary: 'Pin a version (admin)', ...admin, parameters: [nameParam],
          requestBody: { required: true, content: json({ type: 'object', required: ['version'], properties: { version: { type: 'string' } } }) },
          responses: { '200': { description: 'The generator after the pin', content: json(ref('GeneratorInfo')) }, '401': errorResponse('UNAUTHORIZED (also when QGATE_ADMIN_TOKEN is unset)'), '404': errorResponse('NOT_FOUND') },
        },
        delete: {
          summary: 'Unpin (admin): serve the newest version again', ...admin, parameters: [nameParam],
          responses: { '200': { description: 'The generator after the unpin', content: json(ref('GeneratorInfo')) }, '401': errorResponse('UNAUTHORIZED') },
        },
      },
      '/v1/generators/rescan': {
        post: {
          summary: 'Rescan the registry folder now (admin)', ...admin,
          responses: { '200': { description: 'All generators after the scan', content: json({ type: 'object' }) }, '401': errorResponse('UNAUTHORIZED') },
        },
      },
      '/v1/status': {
        get: {
          summary: 'What is serving: the TF.js backend (gpu, node, wasm or cpu), the loaded models, the gate and the limits',
          responses: { '200': { description: 'The status (also while starting or draining; see ready)', content: json(ref('Status')) } },
        },
      },
      '/': {
        get: {
          summary: 'The web page (built by npm run build): score, generate, runs and versions, status',
          responses: { '200': { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } }, '404': errorResponse('The page is not built (NOT_FOUND)') },
        },
      },
      '/healthz': { get: { summary: 'Liveness', responses: { '200': { description: 'The process is up', content: json({ type: 'object' }) } } } },
      '/readyz': {
        get: {
          summary: 'Readiness: extractor, reference set and at least one generator loaded, and not draining',
          responses: { '200': { description: 'Ready', content: json({ type: 'object' }) }, '503': { description: 'Starting or draining', content: json({ type: 'object' }) } },
        },
      },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } } } },
      '/openapi.json': { get: { summary: 'This document', responses: { '200': { description: 'OpenAPI 3', content: json({ type: 'object' }) } } } },
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'QGATE_ADMIN_TOKEN' } },
      schemas: {
        Error: {
          type: 'object', required: ['error'],
          properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string', enum: Object.values(ErrorCodes) }, message: { type: 'string' } } } },
        },
        Score: {
          type: 'object',
          required: ['q', 'pass', 'tau', 'noise', 'noiseNorm', 'distance', 'distanceNorm', 'realism', 'format', 'width', 'height', 'reference', 'extractor'],
          properties: {
            q: { type: 'number', minimum: 0, maximum: 1 }, pass: { type: 'boolean' }, tau: { type: 'number' },
            noise: { type: 'number' }, noiseNorm: { type: 'number' }, distance: { type: 'number' }, distanceNorm: { type: 'number' }, realism: { type: 'number' },
            format: { type: 'string' }, width: { type: 'integer' }, height: { type: 'integer' },
            reference: { type: 'string', description: 'Reference set id' }, extractor: { type: 'string', description: 'Feature extractor id' },
          },
        },
        Generated: {
          type: 'object',
          properties: {
            generator: { type: 'string' }, version: { type: 'string' }, seed: { type: 'integer' }, tau: { type: 'number' },
            n: { type: 'integer' }, count: { type: 'integer' }, attempts: { type: 'integer' }, exhausted: { type: 'boolean' },
            images: { type: 'array', items: { type: 'object', properties: { png: { type: 'string', format: 'byte' }, q: { type: 'number' }, passed: { type: 'boolean' } } } },
          },
        },
        Bounds: { type: 'object', properties: { lo: { type: 'number' }, hi: { type: 'number' } } },
        Status: {
          type: 'object',
          required: ['state', 'ready', 'backend', 'gate', 'models', 'limits', 'uptimeSeconds'],
          properties: {
            state: { type: 'string', enum: ['starting', 'serving', 'draining', 'stopped'] },
            ready: { type: 'boolean' },
            backend: {
              type: 'object', nullable: true,
              properties: { name: { type: 'string', enum: ['gpu', 'node', 'wasm', 'cpu'] }, tfBackend: { type: 'string' }, reason: { type: 'string' } },
            },
            gate: {
              type: 'object', nullable: true,
              properties: {
                tau: { type: 'number' }, alpha: { type: 'number' }, beta: { type: 'number' }, noiseEstimator: { type: 'string' },
                calibration: { type: 'object', description: "Norm's bounds: Norm(x) = clamp((x − lo)/(hi − lo), 0, 1)", properties: { noise: ref('Bounds'), distance: ref('Bounds') } },
              },
            },
            models: {
              type: 'object',
              properties: {
                extractor: { type: 'object', nullable: true, properties: { id: { type: 'string' }, architecture: { type: 'string' }, featureLayer: { type: 'string' }, input: { type: 'object' } } },
                reference: { type: 'object', nullable: true, properties: { id: { type: 'string' }, count: { type: 'integer' }, k: { type: 'integer' }, data: { type: 'string' } } },
                generators: {
                  type: 'array',
                  items: { type: 'object', properties: { name: { type: 'string' }, active: { type: 'string', nullable: true }, pinned: { type: 'string', nullable: true }, loaded: { type: 'array', items: { type: 'string' } } } },
                },
              },
            },
            limits: { type: 'object', properties: { maxUploadBytes: { type: 'integer' }, maxPixels: { type: 'integer' }, generateMaxN: { type: 'integer' }, batchMaxFiles: { type: 'integer' } } },
            uptimeSeconds: { type: 'integer' },
          },
        },
        GeneratorInfo: {
          type: 'object',
          properties: {
            name: { type: 'string' }, active: { type: 'string', nullable: true }, pinned: { type: 'string', nullable: true },
            versions: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  version: { type: 'string' }, state: { type: 'string', enum: ['active', 'loaded', 'available', 'failed'] },
                  manifest: { type: 'object' }, error: { type: 'object' }, loadedAt: { type: 'string' },
                  metrics: { type: 'object', properties: { images: { type: 'integer' }, attempts: { type: 'integer' } } },
                },
              },
            },
          },
        },
      },
    },
  };
}
