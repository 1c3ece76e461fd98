/**
 * Publishing a trained generator into the registry the service serves:
 * `<models>/generators/<name>/<version>/` = model.json + weights.bin + manifest.json
 * (format qgate-generator/1, see the service's src/generator/manifest.ts).
 *
 * The version is the next number after the highest one present, zero-padded to four digits so
 * versions sort by creation both naturally and as strings. The folder is written into a hidden
 * temporary sibling and renamed, so a watching server never sees half a model; a name starting
 * with '.' does not match the registry's name pattern, so the temporary folder is never listed.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { saveLayersModel } from '../backend/model-io.ts';
import { GENERATOR_FORMAT, validateName, type GeneratorManifest } from '../generator/manifest.ts';

/** What the trainer writes: the service's manifest with the training record and code commit required. */
export type PublishedManifest = GeneratorManifest & { training: Record<string, unknown>; code: string };

/** What the publisher is given; format, version and createdAt are filled in when it is written. */
export interface PublishInput {
  name: string;
  architecture: string;
  latentSize: number;
  imageShape: [number, number, number];
  outputRange: [number, number];
  training: Record<string, unknown>;
  code: string;
  [key: string]: unknown;
}

export function validateGeneratorName(name: string): string {
  return validateName('generator', name);
}

/** The version after the highest numbered one in `<generatorsDir>/<name>/` ('0001' for the first). */
export async function nextVersion(generatorsDir: string, name: string): Promise<string> {
  let entries: string[] = [];
  try {
    entries = (await readdir(path.join(generatorsDir, name), { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const highest = entries.filter((v) => /^\d+$/.test(v)).reduce((m, v) => Math.max(m, Number(v)), 0);
  return String(highest + 1).padStart(4, '0');
}

/**
 * Writes G with its manifest as the next version of `name`; returns the folder. Two publishers
 * racing for the same number cannot both win: the rename onto an existing folder fails, and the
 * loser retries with the next number.
 */
export async function publishGenerator(
  generator: tf.LayersModel,
  generatorsDir: string,
  manifest: PublishInput,
  extraFiles: Record<string, unknown> = {},
): Promise<{ dir: string; manifest: PublishedManifest }> {
  const { name, architecture, latentSize, imageShape, outputRange, ...rest } = manifest;
  validateGeneratorName(name);
  for (let attempt = 0; ; attempt++) {
    const version = await nextVersion(generatorsDir, name);
    // Key order as in the service's manifests: identity first.
    const ordered: PublishedManifest = {
      format: GENERATOR_FORMAT, name, version, architecture, latentSize, imageShape, outputRange,
      createdAt: new Date().toISOString(), ...rest,
    };
    const dir = path.join(generatorsDir, name, version);
    try {
      await saveLayersModel(generator, dir, { ...extraFiles, 'manifest.json': ordered });
      return { dir, manifest: ordered };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (attempt < 5 && (code === 'ENOTEMPTY' || code === 'EEXIST')) continue;
      throw e;
    }
  }
}
