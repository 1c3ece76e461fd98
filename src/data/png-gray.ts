import { crc32, inflateSync } from 'node:zlib';

/**
 * A narrow, strict decoder for the one kind of file this service receives most: an 8-bit
 * grayscale, non-interlaced PNG, which is what `Generate` returns and what MNIST-style generators
 * save. For such a file at the model's size, the pixels need no colour conversion, no alpha and no
 * resize, so sharp's work (a header read and a decode pipeline, two trips through the libuv pool)
 * reduces to one zlib inflate and the PNG row filters. Sampled per thread from /proc during a
 * POST /score load run, sharp's threads spent about 0.75 ms of CPU on each 28×28 digit, more than
 * scoring it took (docs/BENCHMARKS.md).
 *
 * It accepts a strict subset of what sharp accepts, and gives the same pixels (test/png-gray.test.ts
 * holds it to that, fuzzing included). Anything else returns undefined, and the caller takes sharp's
 * path, which decides: another colour type or depth, interlacing, another size, a chunk that can
 * change what the pixels mean (tRNS, gAMA, iCCP, sRGB, eXIf orientation, …) or that it does not know,
 * a bad CRC, chunks out of order, bytes after IEND, and image data that is short, long or not one
 * zlib stream.
 */

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Ancillary chunks that carry no pixel meaning (text, time, physical size): safe to skip. */
const INERT_CHUNKS: ReadonlySet<string> = new Set(['tEXt', 'zTXt', 'iTXt', 'tIME', 'pHYs']);

const u32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

/**
 * The 8-bit samples of an 8-bit grayscale PNG of exactly `width` × `height`, row-major, or
 * undefined when the file is anything else (see above).
 */
export function decodeGray8Png(bytes: Uint8Array, width: number, height: number): Uint8Array | undefined {
  // This runs on the caller's thread (the event loop, in the service). A real file of this kind is
  // at most its filtered rows plus zlib's and PNG's few bytes of overhead; anything much larger
  // (megabytes of text or padding) is sharp's, on the libuv pool, so that no client can make the
  // event loop checksum megabytes.
  if (bytes.length > 8192 + 2 * height * (width + 1)) return undefined;
  if (bytes.length < 8 + 25 + 12 || SIGNATURE.some((v, i) => bytes[i] !== v)) return undefined;
  const idat: Uint8Array[] = [];
  let pos = 8;
  let seenIdat = false;
  let idatEnded = false;
  let first = true;
  for (;;) {
    if (pos + 12 > bytes.length) return undefined;
    const length = u32(bytes, pos);
    if (length > bytes.length - pos - 12) return undefined;
    const type = String.fromCharCode(bytes[pos + 4]!, bytes[pos + 5]!, bytes[pos + 6]!, bytes[pos + 7]!);
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    if (crc32(bytes.subarray(pos + 4, pos + 8 + length)) !== u32(bytes, pos + 8 + length)) return undefined;
    pos += 12 + length;
    if (first !== (type === 'IHDR')) return undefined;
    first = false;
    if (type === 'IHDR') {
      // width, height, bit depth 8, colour type 0 (gray), compression 0, filter 0, interlace 0.
      if (length !== 13 || u32(data, 0) !== width || u32(data, 4) !== height) return undefined;
      if (data[8] !== 8 || data[9] !== 0 || data[10] !== 0 || data[11] !== 0 || data[12] !== 0) return undefined;
    } else if (type === 'IDAT') {
      if (idatEnded) return undefined;
      seenIdat = true;
      idat.push(data);
    } else if (type === 'IEND') {
      if (length !== 0 || !seenIdat || pos !== bytes.length) return undefined;
      break;
    } else if (INERT_CHUNKS.has(type)) {
      if (seenIdat) idatEnded = true;
    } else {
      return undefined;
    }
  }

  const stride = width + 1;
  const compressed = Buffer.concat(idat);
  let raw: Buffer;
  try {
    // One zlib stream, nothing after it, whose output is exactly the filtered rows; inflate checks
    // its Adler-32, and the output cap keeps a stream that inflates to more from being inflated.
    const { buffer, engine } = inflateSync(compressed, { maxOutputLength: height * stride + 1, info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
    if (engine.bytesWritten !== compressed.length) return undefined;
    raw = buffer;
  } catch {
    return undefined;
  }
  if (raw.length !== height * stride) return undefined;

  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * stride]!;
    const src = y * stride + 1;
    const row = y * width;
    const up = row - width;
    for (let x = 0; x < width; x++) {
      const left = x > 0 ? out[row + x - 1]! : 0;
      const above = y > 0 ? out[up + x]! : 0;
      const diag = x > 0 && y > 0 ? out[up + x - 1]! : 0;
      let predictor: number;
      switch (filter) {
        case 0: predictor = 0; break;
        case 1: predictor = left; break;
        case 2: predictor = above; break;
        case 3: predictor = (left + above) >> 1; break;
        case 4: {
          const p = left + above - diag;
          const pa = Math.abs(p - left);
          const pb = Math.abs(p - above);
          const pc = Math.abs(p - diag);
          predictor = pa <= pb && pa <= pc ? left : pb <= pc ? above : diag;
          break;
        }
        default: return undefined;
      }
      out[row + x] = (raw[src + x]! + predictor) & 0xff;
    }
  }
  return out;
}
