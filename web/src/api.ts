import type { ServiceStatus } from '../../src/server/service.ts';

/** The REST API the page uses, and errors worded for people from the catalogue's stable codes. */

export interface ApiErrorBody { error: { code: string; message: string } }

export class ApiError extends Error {
  constructor(readonly code: string, message: string, readonly status: number) {
    super(message);
  }
}

/** What a person should read for each error code; the server's message follows as detail. */
const WORDING: Record<string, string> = {
  IMAGE_UNDECODABLE: 'Not an image: the file could not be decoded as PNG, JPEG, WebP, GIF, TIFF or AVIF.',
  IMAGE_TOO_LARGE: 'Too large: the image is over the upload limit in bytes or pixels.',
  UNSUPPORTED_FORMAT: 'Unsupported format: SVG, PDF and other non-raster files cannot be scored.',
  IMAGE_MISSING: 'No image was sent.',
  INVALID_ARGUMENT: 'Invalid input.',
  NOT_FOUND: 'Not found.',
  OVERLOADED: 'The service is busy: try again in a moment.',
  UNAVAILABLE: 'The service is starting or shutting down: try again in a moment.',
  PAYLOAD_TOO_LARGE: 'Too large.',
};

export function describeError(e: unknown): string {
  if (e instanceof ApiError) {
    const head = WORDING[e.code] ?? `Error ${e.status}.`;
    return `${head} (${e.code}: ${e.message})`;
  }
  if (e instanceof TypeError) return `The service cannot be reached: ${e.message}`;
  return (e as Error).message ?? String(e);
}

async function parse<T>(res: Response): Promise<T> {
  const type = res.headers.get('content-type') ?? '';
  if (!res.ok) {
    if (type.includes('json')) {
      const body = (await res.json()) as Partial<ApiErrorBody>;
      if (body.error) throw new ApiError(body.error.code, body.error.message, res.status);
    }
    throw new ApiError('HTTP_' + res.status, res.statusText || 'request failed', res.status);
  }
  return (await res.json()) as T;
}

export async function getJson<T>(url: string, init?: RequestInit): Promise<T> {
  return parse<T>(await fetch(url, init));
}

export interface Score {
  q: number; pass: boolean; tau: number;
  noise: number; noiseNorm: number; distance: number; distanceNorm: number; realism: number;
  format: string; width: number; height: number; reference: string; extractor: string;
}

export async function scoreImage(file: Blob, name: string): Promise<Score> {
  const form = new FormData();
  form.append('image', file, name);
  return parse<Score>(await fetch('/score', { method: 'POST', body: form }));
}

export interface Generated {
  generator: string; version: string; seed: number; tau: number | null; n: number; count: number; attempts: number; exhausted: boolean;
  images: Array<{ png: string; q: number; passed: boolean }>;
}

/** GET /v1/status: the server's own type, so the page cannot drift from it. */
export type Status = ServiceStatus;

export interface VersionInfo {
  version: string;
  state: 'active' | 'loaded' | 'available' | 'failed';
  manifest?: Manifest;
  error?: { code: string; message: string };
  metrics: { images: number; attempts: number };
}
export interface Manifest {
  name: string; version: string; architecture: string; createdAt: string;
  training?: Record<string, unknown>;
  metrics?: Record<string, unknown> | null;
  [key: string]: unknown;
}
export interface GeneratorInfo { name: string; active: string | null; pinned: string | null; versions: VersionInfo[] }

export interface History {
  generator: string; version: string; available: boolean;
  lines: Array<Record<string, unknown>>;
}

export const api = {
  status: () => getJson<Status>('/v1/status'),
  generators: async () => (await getJson<{ generators: GeneratorInfo[] }>('/v1/generators')).generators,
  history: (name: string, version: string) => getJson<History>(`/v1/generators/${encodeURIComponent(name)}/${encodeURIComponent(version)}/metrics`),
  generate: (params: URLSearchParams) => getJson<Generated>(`/generate?${params}`),
};
