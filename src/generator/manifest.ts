/**
 * What a generator version folder holds and how it is described. A folder
 * `models/generators/<name>/<version>/` is a TF.js LayersModel (model.json + weights.bin) plus
 * manifest.json; the manifest alone says how to sample from the model and how it was made.
 */
import { QgateError } from '../errors.ts';

export const GENERATOR_FORMAT = 'qgate-generator/1';

/**
 * Names and versions: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit,
 * at most 64 characters. Nothing that could be a path separator or '..' gets through, so a name
 * from a request can never point outside the registry folder.
 */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export function validateName(kind: 'generator' | 'version', value: string): string {
  if (!NAME_PATTERN.test(value) || value.includes('..')) {
    throw new QgateError('INVALID_ARGUMENT', `${kind} must match ${NAME_PATTERN.source} (no '..'), got ${JSON.stringify(value.slice(0, 80))}`);
  }
  return value;
}

export interface GeneratorManifest {
  format: typeof GENERATOR_FORMAT;
  /** The generator's name (the folder above the version). */
  name: string;
  /** The version (its own folder name). */
  version: string;
  architecture: string;
  /** Length of the latent vector z ~ N(0, I). */
  latentSize: number;
  /** [height, width, channels] of one generated image. */
  imageShape: [number, number, number];
  /** The model's output range; images are mapped to [0,1] as (x − lo)/(hi − lo). */
  outputRange: [number, number];
  createdAt: string;
  /** How it was made: script, data, steps, seed, losses, … */
  training?: Record<string, unknown>;
  [key: string]: unknown;
}

function isShape(v: unknown): v is [number, number, number] {
  return Array.isArray(v) && v.length === 3 && v.every((d) => Number.isSafeInteger(d) && d > 0);
}

/** Checks a parsed manifest.json; `source` names the file in messages. */
export function parseGeneratorManifest(json: unknown, source: string): GeneratorManifest {
  const bad = (what: string) => new QgateError('MODEL_INVALID', `${source}: ${what}`);
  if (typeof json !== 'object' || json === null) throw bad('not a JSON object');
  const m = json as Partial<GeneratorManifest>;
  if (m.format !== GENERATOR_FORMAT) throw bad(`format must be '${GENERATOR_FORMAT}', got ${JSON.stringify(m.format)}`);
  if (!Number.isSafeInteger(m.latentSize) || (m.latentSize ?? 0) <= 0) throw bad('latentSize must be a positive integer');
  if (!isShape(m.imageShape)) throw bad('imageShape must be [height, width, channels]');
  if (m.imageShape[2] !== 1 && m.imageShape[2] !== 3) throw bad('imageShape channels must be 1 or 3');
  const range = m.outputRange;
  if (!Array.isArray(range) || range.length !== 2 || !(Number(range[1]) > Number(range[0]))) throw bad('outputRange must be [lo, hi] with lo < hi');
  if (typeof m.architecture !== 'string' || typeof m.createdAt !== 'string') throw bad('architecture and createdAt are required');
  return m as GeneratorManifest;
}
