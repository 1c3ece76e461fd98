/**
 * The hostile-input corpus: every kind of image a careless or malicious client may send, each with
 * the answer qgate must give (a catalogue code, or OK for the ones that must score normally). Built
 * in memory by buildCorpus(); `tsx test/hostile/corpus.ts [dir]` also writes the files (default
 * test-artifacts/hostile, git-ignored) for poking at a running server with curl or grpcurl.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { encodePng } from '../../src/data/images.ts';
import type { ErrorCode } from '../../src/errors.ts';
import { mulberry32 } from '../../src/random.ts';

export interface ImageCase {
  /** A file-name-safe description. */
  name: string;
  bytes: Buffer;
  /** Content-Type the client claims (a lie, for some cases). */
  contentType: string;
  /** The catalogue code expected on both protocols; 'OK' means it must score (HTTP 200, gRPC OK). */
  expect: ErrorCode | 'OK';
  /**
   * Over gRPC, a message larger than grpc.max_receive_message_length is refused by grpc-js itself
   * with RESOURCE_EXHAUSTED before qgate sees it (so without the qgate-error-code trailer).
   */
  grpcTransportRefusal?: true;
}

export function randomBytes(n: number, seed: number): Buffer {
  const rng = mulberry32(seed);
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rng() * 256);
  return out;
}

/** A white 28×28 digit-like stroke on black, 8-bit gray: the valid image the other cases start from. */
export function strokePixels(size = 28): Uint8Array {
  const px = new Uint8Array(size * size);
  for (let y = 4; y < size - 4; y++) for (let x = size / 2 - 2; x < size / 2 + 2; x++) px[y * size + x] = 255;
  return px;
}

export function validPng(): Promise<Buffer> {
  return encodePng(strokePixels(), 28, 28, 1);
}

export function validJpeg(): Promise<Buffer> {
  return sharp(strokePixels(), { raw: { width: 28, height: 28, channels: 1 } }).jpeg({ quality: 90 }).toBuffer();
}

/** A PNG chunk with its length and CRC. */
export function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Recomputes every chunk CRC of a (possibly mutated) PNG as far as its chunk lengths can be walked,
 * so that a mutation reaches libpng's and zlib's parsing instead of stopping at the first CRC check.
 */
export function fixPngCrcs(png: Buffer): Buffer {
  const out = Buffer.from(png);
  let at = 8;
  while (at + 12 <= out.length) {
    const len = out.readUInt32BE(at);
    if (at + 12 + len > out.length) break;
    out.writeUInt32BE(crc32(out.subarray(at + 4, at + 8 + len)), at + 8 + len);
    at += 12 + len;
  }
  return out;
}

/** A PNG whose IHDR claims width × height over one tiny IDAT: a decompression bomb's header. */
export function pngClaiming(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grayscale
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Two frames, a stroke then all white: qgate scores the first frame (decodeImage reads page 0). */
async function animatedGif(): Promise<Buffer> {
  const frame = strokePixels();
  const rgb = new Uint8Array(28 * 56 * 3);
  for (let i = 0; i < 28 * 28; i++) rgb.fill(frame[i]!, i * 3, i * 3 + 3);
  rgb.fill(255, 28 * 28 * 3);
  return sharp(rgb, { raw: { width: 28, height: 56, channels: 3, pageHeight: 28 } }).gif({ loop: 0, delay: [100, 100] }).toBuffer();
}

const XXE_SVG = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE svg [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><text x="0" y="14">&xxe;</text></svg>
`;

const BILLION_LAUGHS_SVG = `<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>
<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><text>&f;</text></svg>
`;

/** Every image case; `maxUploadBytes` is the server's QGATE_MAX_UPLOAD_BYTES. */
export async function buildCorpus(maxUploadBytes: number): Promise<ImageCase[]> {
  const png = await validPng();
  const jpeg = await validJpeg();
  const raw28 = sharp(strokePixels(), { raw: { width: 28, height: 28, channels: 1 } });
  const one = (fmt: 'png' | 'jpeg' | 'gif') => sharp({ create: { width: 1, height: 1, channels: 3, background: '#fff' } }).toFormat(fmt).toBuffer();
  return [
    { name: 'empty', bytes: Buffer.alloc(0), contentType: 'image/png', expect: 'IMAGE_MISSING' },
    { name: 'random-1k', bytes: randomBytes(1024, 1), contentType: 'image/png', expect: 'IMAGE_UNDECODABLE' },
    { name: 'random-1byte', bytes: Buffer.from([0x89]), contentType: 'image/png', expect: 'IMAGE_UNDECODABLE' },
    { name: 'png-signature-only', bytes: PNG_SIGNATURE, contentType: 'image/png', expect: 'IMAGE_UNDECODABLE' },
    { name: 'png-truncated-header', bytes: png.subarray(0, 30), contentType: 'image/png', expect: 'IMAGE_UNDECODABLE' },
    { name: 'png-truncated-half', bytes: png.subarray(0, Math.floor(png.length / 2)), contentType: 'image/png', expect: 'IMAGE_UNDECODABLE' },
    { name: 'jpeg-truncated-half', bytes: jpeg.subarray(0, Math.floor(jpeg.length / 2)), contentType: 'image/jpeg', expect: 'IMAGE_UNDECODABLE' },
    { name: 'text-as-png', bytes: Buffer.from('hello, I am plain text pretending to be a PNG\n'), contentType: 'image/png', expect: 'IMAGE_UNDECODABLE' },
    { name: 'html-as-png', bytes: Buffer.from('<!doctype html><html><body><img src=x onerror=alert(1)></body></html>'), contentType: 'image/png', expect: 'UNSUPPORTED_FORMAT' },
    { name: 'svg', bytes: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><rect width="28" height="28" fill="#fff"/></svg>'), contentType: 'image/svg+xml', expect: 'UNSUPPORTED_FORMAT' },
    { name: 'svg-xxe', bytes: Buffer.from(XXE_SVG), contentType: 'image/svg+xml', expect: 'UNSUPPORTED_FORMAT' },
    { name: 'svg-xxe-as-png', bytes: Buffer.from(XXE_SVG), contentType: 'image/png', expect: 'UNSUPPORTED_FORMAT' },
    { name: 'svg-billion-laughs', bytes: Buffer.from(BILLION_LAUGHS_SVG), contentType: 'image/svg+xml', expect: 'UNSUPPORTED_FORMAT' },
    { name: 'pdf', bytes: Buffer.from('%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n'), contentType: 'image/png', expect: 'UNSUPPORTED_FORMAT' },
    { name: 'png-claims-30000x30000', bytes: pngClaiming(30000, 30000), contentType: 'image/png', expect: 'IMAGE_TOO_LARGE' },
    // libpng's own limit (1,000,000 rows) refuses this header before qgate's pixel limit is asked.
    { name: 'png-claims-1x2000000000', bytes: pngClaiming(1, 2_000_000_000), contentType: 'image/png', expect: 'IMAGE_UNDECODABLE' },
    { name: 'png-claims-0x0', bytes: pngClaiming(0, 0), contentType: 'image/png', expect: 'IMAGE_UNDECODABLE' },
    { name: 'oversized-just-over', bytes: Buffer.concat([png, Buffer.alloc(maxUploadBytes + 1 - png.length)]), contentType: 'image/png', expect: 'IMAGE_TOO_LARGE' },
    { name: 'oversized-double', bytes: Buffer.alloc(2 * maxUploadBytes, 7), contentType: 'image/png', expect: 'IMAGE_TOO_LARGE', grpcTransportRefusal: true },
    // Must score normally:
    { name: 'animated-gif-first-frame', bytes: await animatedGif(), contentType: 'image/gif', expect: 'OK' },
    { name: 'png-16bit', bytes: await raw28.clone().toColourspace('grey16').png().toBuffer(), contentType: 'image/png', expect: 'OK' },
    { name: 'png-16bit-rgba', bytes: await sharp(strokePixels(), { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('rgb16').ensureAlpha().png().toBuffer(), contentType: 'image/png', expect: 'OK' },
    { name: 'jpeg-cmyk', bytes: await raw28.clone().toColourspace('cmyk').jpeg().toBuffer(), contentType: 'image/jpeg', expect: 'OK' },
    { name: 'png-1x1', bytes: await one('png'), contentType: 'image/png', expect: 'OK' },
    { name: 'jpeg-1x1', bytes: await one('jpeg'), contentType: 'image/jpeg', expect: 'OK' },
    { name: 'gif-1x1', bytes: await one('gif'), contentType: 'image/gif', expect: 'OK' },
    { name: 'png-1x4096-strip', bytes: await sharp({ create: { width: 1, height: 4096, channels: 3, background: '#fff' } }).png().toBuffer(), contentType: 'image/png', expect: 'OK' },
    { name: 'png-as-jpeg-content-type', bytes: png, contentType: 'image/jpeg', expect: 'OK' },
  ];
}

/** Writes the corpus as files (for curl/grpcurl), with an index of the expected codes. */
async function main(): Promise<void> {
  const dir = path.resolve(process.argv[2] ?? 'test-artifacts/hostile');
  await mkdir(dir, { recursive: true });
  const corpus = await buildCorpus(10 * 1024 * 1024);
  for (const c of corpus) await writeFile(path.join(dir, `${c.name}.bin`), c.bytes);
  await writeFile(path.join(dir, 'index.json'), JSON.stringify(corpus.map(({ name, contentType, expect }) => ({ file: `${name}.bin`, contentType, expect })), null, 2));
  console.log(`wrote ${corpus.length} files to ${dir}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
