import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { QgateError, isQgateError } from '../errors.ts';
import { decodeGray8Png } from './png-gray.ts';

/**
 * Turning arbitrary user images into exactly what a model sees. Everything that reaches a model
 * goes through decodeImage, so that an image scores the same whether it came from the REST API,
 * the CLI, or a reference folder.
 */

export interface DecodeTarget {
  height: number;
  width: number;
  /** 1: one luminance channel (MNIST-style); 3: sRGB. */
  channels: 1 | 3;
}

export interface DecodeLimits {
  /** Largest accepted input, in bytes (default 10 MiB). */
  maxBytes?: number;
  /** Largest accepted width × height of the (first frame of the) input (default 4096 × 4096). */
  maxPixels?: number;
}

export interface DecodedImage {
  /** target.height × target.width × target.channels values in [0, 1], row-major HWC. */
  pixels: Float32Array;
  /** The container format as sharp names it: 'png', 'jpeg', 'webp', 'gif', 'tiff', 'heif'. */
  format: string;
  /** Original width, as displayed (after EXIF orientation), before any resize. */
  width: number;
  /** Original height, as displayed (after EXIF orientation), before any resize. */
  height: number;
  /** Channels of the original, e.g. 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA or CMYK. */
  channels: number;
  /** Bits per sample of the original: 16 for 16-bit PNG/TIFF, otherwise 8 (palette/1-bit count as 8). */
  bitDepth: 8 | 16;
}

export const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_MAX_PIXELS = 4096 * 4096;

/**
 * Raster formats qgate scores. Everything else sharp might recognise is refused on purpose: SVG
 * and PDF are programs rather than pixels (external references, rendering cost chosen by the
 * sender), and exotic loaders (vips, raw, fits, …) are attack surface nobody needs here. 'heif'
 * covers AVIF, the only HEIF flavour the prebuilt sharp decodes.
 */
export const RASTER_FORMATS: ReadonlySet<string> = new Set(['png', 'jpeg', 'webp', 'gif', 'tiff', 'heif']);

/** File extensions loadImageFolder picks up (compared case-insensitively). */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  '.png',
  '.jpg',
  '.jpeg',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
  '.avif',
  '.heic',
  '.heif',
]);

const BLACK = { r: 0, g: 0, b: 0, alpha: 1 };

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new QgateError('INVALID_ARGUMENT', `${name} must be a positive integer, got ${value}`);
  }
  return value;
}

function checkTarget(target: DecodeTarget): void {
  positiveInteger('target height', target.height);
  positiveInteger('target width', target.width);
  if (target.channels !== 1 && target.channels !== 3) {
    throw new QgateError('INVALID_ARGUMENT', `target channels must be 1 or 3, got ${String(target.channels)}`);
  }
}

function startsWith(bytes: Uint8Array, ascii: string): boolean {
  if (bytes.length < ascii.length) return false;
  for (let i = 0; i < ascii.length; i++) if (bytes[i] !== ascii.charCodeAt(i)) return false;
  return true;
}

/**
 * True when the first byte after an optional UTF-8 BOM and whitespace is '<': SVG, XML or HTML. No
 * raster format starts that way, and refusing these before sharp means libxml2/librsvg never parse
 * a client's document (DTDs, external entities, entity expansion), not even to read its header.
 */
function looksLikeMarkup(bytes: Uint8Array): boolean {
  let i = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  while (i < bytes.length && i < 1024 && (bytes[i] === 0x20 || bytes[i] === 0x09 || bytes[i] === 0x0a || bytes[i] === 0x0d)) i++;
  return bytes[i] === 0x3c;
}

/** 8-bit samples as the [0, 1] floats a model takes. */
function unitPixels(samples: Uint8Array): Float32Array {
  const pixels = new Float32Array(samples.length);
  for (let i = 0; i < samples.length; i++) pixels[i] = samples[i]! / 255;
  return pixels;
}

/**
 * Maps anything sharp throws to a QgateError, so that no raw libvips message (or its absence of a
 * code) escapes: the pixel-limit refusal is IMAGE_TOO_LARGE, everything else IMAGE_UNDECODABLE.
 */
function wrapSharpError(e: unknown, bytes: Uint8Array, maxPixels: number): QgateError {
  if (isQgateError(e)) return e;
  const message = e instanceof Error ? e.message : String(e);
  if (/pixel limit/i.test(message)) {
    return new QgateError('IMAGE_TOO_LARGE', `image has more than the limit of ${maxPixels} pixels (${message})`, { cause: e });
  }
  // The prebuilt sharp has no PDF loader, so it cannot tell a PDF from noise; recognise it here so
  // that the caller learns the format is refused rather than that the file is broken.
  if (startsWith(bytes, '%PDF-')) {
    return new QgateError('UNSUPPORTED_FORMAT', 'PDF is not supported: only raster images are scored', { cause: e });
  }
  return new QgateError('IMAGE_UNDECODABLE', `cannot decode image: ${message}`, { cause: e });
}

/**
 * Decodes image bytes into the model's input. The conversion is fixed, so the same bytes always
 * give the same pixels:
 *
 * 1. Refuse empty input (IMAGE_MISSING), input over `maxBytes` (IMAGE_TOO_LARGE) and markup (SVG,
 *    XML, HTML: UNSUPPORTED_FORMAT), before sharp sees a byte.
 *    An 8-bit gray PNG already at the target size, with nothing that could change its pixels, is
 *    decoded here without sharp, to the same pixels (png-gray.ts); everything else goes on.
 * 2. Read only the header (sharp metadata, `failOn: 'error'`, `limitInputPixels: maxPixels`). Refuse
 *    formats outside RASTER_FORMATS (SVG, PDF, …: UNSUPPORTED_FORMAT), samples other than 8/16-bit
 *    integers (UNSUPPORTED_FORMAT), and width × height over `maxPixels` (IMAGE_TOO_LARGE). This
 *    happens before any pixel is decoded, so a decompression bomb costs a header read, not memory.
 * 3. Decode the first frame/page only: animated GIF/WebP and multi-page TIFF are scored by their
 *    first image, which is what a thumbnail would show.
 * 4. Apply the EXIF orientation; flatten alpha onto black (MNIST digits are white on black, so a
 *    transparent background must become black, not white); convert CMYK, palette and 16-bit input
 *    to 8-bit sRGB (embedded ICC profiles are honoured), then to one luminance channel (libvips'
 *    sRGB → B_W conversion) when `channels` is 1, or keep sRGB when it is 3.
 * 5. Unless the image already has the target size, resize with `fit: 'contain'` (aspect ratio kept,
 *    black letterbox, centred) using sharp's default lanczos3 kernel, which antialiases when
 *    shrinking.
 * 6. Output the 8-bit samples divided by 255, row-major HWC.
 *
 * Undecodable or truncated data is IMAGE_UNDECODABLE; sharp's own errors never escape unwrapped.
 */
export async function decodeImage(
  bytes: Buffer | Uint8Array,
  target: DecodeTarget,
  limits: DecodeLimits = {},
): Promise<DecodedImage> {
  checkTarget(target);
  const maxBytes = positiveInteger('maxBytes', limits.maxBytes ?? DEFAULT_MAX_BYTES);
  const maxPixels = positiveInteger('maxPixels', limits.maxPixels ?? DEFAULT_MAX_PIXELS);

  if (bytes.length === 0) throw new QgateError('IMAGE_MISSING', 'image is empty (0 bytes)');
  if (bytes.length > maxBytes) {
    throw new QgateError('IMAGE_TOO_LARGE', `image is ${bytes.length} bytes, more than the limit of ${maxBytes}`);
  }
  if (looksLikeMarkup(bytes)) {
    throw new QgateError('UNSUPPORTED_FORMAT', 'SVG and other XML/HTML documents are not supported: only raster images are scored');
  }

  // The common case, an 8-bit gray PNG already at the model's size, without sharp (png-gray.ts).
  if (target.channels === 1 && target.width * target.height <= maxPixels) {
    const gray = decodeGray8Png(bytes, target.width, target.height);
    if (gray) return { pixels: unitPixels(gray), format: 'png', width: target.width, height: target.height, channels: 1, bitDepth: 8 };
  }
  return decodeWithSharp(bytes, target, maxPixels);
}

/**
 * Steps 2–6 of decodeImage, for every input its fast path does not take. Exported so that tests
 * can hold the fast path to exactly these pixels; callers use decodeImage, which checks first.
 */
export async function decodeWithSharp(bytes: Buffer | Uint8Array, target: DecodeTarget, maxPixels: number): Promise<DecodedImage> {
  const options = { limitInputPixels: maxPixels, failOn: 'error', pages: 1, page: 0 } as const;
  let meta: Metadata;
  try {
    meta = await sharp(bytes, options).metadata();
  } catch (e) {
    throw wrapSharpError(e, bytes, maxPixels);
  }

  if (!RASTER_FORMATS.has(meta.format)) {
    throw new QgateError('UNSUPPORTED_FORMAT', `${meta.format} images are not supported: only raster images are scored`);
  }
  if (meta.depth !== 'uchar' && meta.depth !== 'ushort') {
    throw new QgateError('UNSUPPORTED_FORMAT', `${meta.format} with ${meta.depth} samples is not supported`);
  }
  const { width, height } = meta.autoOrient;
  if (!(width > 0 && height > 0)) throw new QgateError('IMAGE_UNDECODABLE', 'image header has no size');
  if (width * height > maxPixels) {
    throw new QgateError(
      'IMAGE_TOO_LARGE',
      `image is ${width}x${height} = ${width * height} pixels, more than the limit of ${maxPixels}`,
    );
  }

  let pipeline = sharp(bytes, options)
    .autoOrient()
    .flatten({ background: BLACK })
    .toColourspace(target.channels === 1 ? 'b-w' : 'srgb');
  if (width !== target.width || height !== target.height) {
    pipeline = pipeline.resize(target.width, target.height, { fit: 'contain', background: BLACK, kernel: 'lanczos3' });
  }

  let data: Buffer;
  let info: OutputInfo;
  try {
    ({ data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw wrapSharpError(e, bytes, maxPixels);
  }
  const expected = target.height * target.width * target.channels;
  if (info.channels !== target.channels || data.length !== expected) {
    // Would be a bug in the pipeline above rather than bad input; still reported with a stable code.
    throw new QgateError(
      'IMAGE_UNDECODABLE',
      `decoder produced ${info.width}x${info.height}x${info.channels}, expected ${target.width}x${target.height}x${target.channels}`,
    );
  }

  return {
    pixels: unitPixels(data),
    format: meta.format,
    width,
    height,
    channels: meta.channels,
    bitDepth: meta.depth === 'ushort' ? 16 : 8,
  };
}

export interface ImageFolder {
  /** Full paths (dir joined with the file name), sorted by file name. */
  files: string[];
  /** files.length × height × width × channels values in [0, 1], in the order of `files`. */
  pixels: Float32Array;
}

export interface ImageFolderOptions {
  /** Decode only the first `limit` images (by name). */
  limit?: number;
  /** Passed to decodeImage for every file; maxBytes is also checked before a file is read. */
  limits?: DecodeLimits;
}

/** How many files are decoded at once; sharp runs each on the libuv pool, which has 4 threads. */
const FOLDER_CONCURRENCY = 4;

async function listImageFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new QgateError('NOT_FOUND', `image folder not found: ${dir}`, { cause: e });
    if (code === 'ENOTDIR') throw new QgateError('INVALID_ARGUMENT', `not a folder: ${dir}`, { cause: e });
    throw e;
  }
  const names: string[] = [];
  for (const entry of entries) {
    if (!IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase())) continue;
    if (entry.isFile() || (entry.isSymbolicLink() && (await stat(join(dir, entry.name))).isFile())) {
      names.push(entry.name);
    }
  }
  // Plain code-unit order, not localeCompare: the order must not depend on the machine's locale.
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

async function decodeFile(path: string, target: DecodeTarget, limits: DecodeLimits): Promise<Float32Array> {
  try {
    const maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
    const { size } = await stat(path);
    if (size > maxBytes) {
      throw new QgateError('IMAGE_TOO_LARGE', `image is ${size} bytes, more than the limit of ${maxBytes}`);
    }
    return (await decodeImage(await readFile(path), target, limits)).pixels;
  } catch (e) {
    if (isQgateError(e)) throw new QgateError(e.code, `${path}: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * Decodes every image file directly in `dir` (not recursive), sorted by name, keeping only
 * IMAGE_EXTENSIONS (case-insensitive) so that READMEs and sidecar files are skipped. Each file goes
 * through decodeImage with the same target. A file that fails stops the load with the same error
 * code as decodeImage and a message that starts with the file's path; when several fail, the first
 * by name is reported, so the outcome does not depend on timing. An empty folder gives an empty
 * result (callers decide whether that is an error). A missing folder is NOT_FOUND.
 */
export async function loadImageFolder(
  dir: string,
  target: DecodeTarget,
  options: ImageFolderOptions = {},
): Promise<ImageFolder> {
  checkTarget(target);
  let names = await listImageFiles(dir);
  if (options.limit !== undefined) {
    if (!Number.isSafeInteger(options.limit) || options.limit < 0) {
      throw new QgateError('INVALID_ARGUMENT', `limit must be a non-negative integer, got ${options.limit}`);
    }
    names = names.slice(0, options.limit);
  }
  const files = names.map((name) => join(dir, name));
  const size = target.height * target.width * target.channels;
  const pixels = new Float32Array(files.length * size);
  const failures = new Map<number, unknown>();

  let next = 0;
  const worker = async (): Promise<void> => {
    // Stop taking new files after a failure; files already started finish, so every file before
    // the first failing one has been tried and the lowest failing index is the first by name.
    while (next < files.length && failures.size === 0) {
      const index = next++;
      try {
        pixels.set(await decodeFile(files[index] ?? '', target, options.limits ?? {}), index * size);
      } catch (e) {
        failures.set(index, e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(FOLDER_CONCURRENCY, files.length) }, worker));
  if (failures.size > 0) throw failures.get(Math.min(...failures.keys()));
  return { files, pixels };
}

/**
 * Encodes pixels as an 8-bit PNG of exactly `channels` channels (gray, gray+alpha, RGB or RGBA). A Float32Array
 * holds values in [0, 1] (clamped; NaN becomes 0) that are scaled by 255 and rounded; a Uint8Array
 * is taken as 0..255 bytes as they are. The output of encodePng decoded by decodeImage at the same
 * size and channels gives back the same bytes / 255.
 */
export async function encodePng(
  pixels: Float32Array | Uint8Array,
  height: number,
  width: number,
  channels: 1 | 2 | 3 | 4,
): Promise<Buffer> {
  positiveInteger('height', height);
  positiveInteger('width', width);
  if (![1, 2, 3, 4].includes(channels)) {
    throw new QgateError('INVALID_ARGUMENT', `channels must be 1 to 4, got ${String(channels)}`);
  }
  if (pixels.length !== height * width * channels) {
    throw new QgateError(
      'INVALID_ARGUMENT',
      `${pixels.length} values do not fill ${height}x${width}x${channels} (${height * width * channels})`,
    );
  }
  let bytes: Uint8Array;
  if (pixels instanceof Uint8Array) {
    bytes = pixels;
  } else {
    bytes = new Uint8Array(pixels.length);
    for (let i = 0; i < pixels.length; i++) {
      const v = pixels[i] ?? 0;
      bytes[i] = Number.isNaN(v) ? 0 : Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
  }
  // Without the explicit b-w interpretation sharp would write one- and two-channel input as RGB(A).
  return sharp(bytes, { raw: { width, height, channels } })
    .toColourspace(channels <= 2 ? 'b-w' : 'srgb')
    .png()
    .toBuffer();
}
