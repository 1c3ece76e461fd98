/**
 * Datasets named by a spec string (`mnist:train`, `mnist:test`, `folder:<path>`), loaded as one
 * [count, H, W, C] float array in [0,1]. The CLIs and benchmarks take data this way.
 */
import { loadImageFolder } from './images.ts';
import { loadMnist, parseDataSpec } from './mnist.ts';

export interface Dataset {
  spec: string;
  images: Float32Array;
  shape: [number, number, number];
  count: number;
  labels?: Uint8Array;
  files?: string[];
}

export async function loadDataset(
  spec: string,
  target: { height: number; width: number; channels: 1 | 3 },
  options: { limit?: number; offset?: number } = {},
): Promise<Dataset> {
  const parsed = parseDataSpec(spec);
  if (parsed.kind === 'mnist') {
    const split = loadMnist(parsed.split, options);
    return { spec, images: split.images, shape: [28, 28, 1], count: split.count, labels: split.labels };
  }
  const folder = await loadImageFolder(parsed.path, target, options.limit === undefined ? {} : { limit: options.limit });
  return {
    spec,
    images: folder.pixels,
    shape: [target.height, target.width, target.channels],
    count: folder.files.length,
    files: folder.files,
  };
}
