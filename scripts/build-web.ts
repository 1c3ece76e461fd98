/**
 * `npm run build`: bundles the web page (web/) with esbuild into dist/web/ (or QGATE_WEB_DIR):
 * index.html plus assets/app-<hash>.js and assets/app-<hash>.css, everything from npm, no CDN.
 * The server serves index.html at `/` and the hashed assets as immutable under /assets.
 *
 * Where the build tools are absent (a production install, `npm ci --omit=dev`, as in the Docker
 * image) and a page was built before, that page is kept: `npm start`'s prestart still succeeds.
 */
import { createRequire } from 'node:module';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface BuiltWeb {
  dir: string;
  files: string[];
  bytes: number;
}

/** Builds the page into `outDir` (replacing what was there); returns the files written. */
export async function buildWeb(outDir: string, options: { minify?: boolean } = {}): Promise<BuiltWeb> {
  const esbuild = await import('esbuild');
  const assets = path.join(outDir, 'assets');
  await rm(assets, { recursive: true, force: true });
  await mkdir(assets, { recursive: true });
  const result = await esbuild.build({
    entryPoints: { app: path.join(root, 'web', 'src', 'main.ts') },
    bundle: true,
    format: 'esm',
    target: ['es2022', 'chrome110', 'firefox115', 'safari16'],
    minify: options.minify ?? true,
    sourcemap: 'linked',
    outdir: assets,
    entryNames: '[name]-[hash]',
    metafile: true,
    legalComments: 'linked',
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((f) => path.resolve(f));
  const js = outputs.find((f) => f.endsWith('.js'));
  const css = outputs.find((f) => f.endsWith('.css'));
  if (!js || !css) throw new Error(`esbuild wrote no app bundle: ${outputs.join(', ')}`);
  const template = await readFile(path.join(root, 'web', 'index.html'), 'utf8');
  const html = template
    .replace('<!--css-->', `<link rel="stylesheet" href="/assets/${path.basename(css)}">`)
    .replace('<!--js-->', `<script type="module" src="/assets/${path.basename(js)}"></script>`);
  await writeFile(path.join(outDir, 'index.html'), html);
  const files = [path.join(outDir, 'index.html'), ...outputs];
  let bytes = 0;
  for (const f of files) bytes += (await readFile(f)).length;
  return { dir: outDir, files, bytes };
}

async function main(): Promise<void> {
  const outDir = path.resolve(process.env.QGATE_WEB_DIR || path.join(root, 'dist', 'web'));
  try {
    const require = createRequire(import.meta.url);
    require.resolve('esbuild');
    require.resolve('uplot');
  } catch {
    try {
      await readFile(path.join(outDir, 'index.html'));
      console.log(`build tools not installed (production install): serving the page already built in ${outDir}`);
      return;
    } catch {
      throw new Error('cannot build the web page: esbuild and uplot are dev dependencies; run npm ci (without --omit=dev) first');
    }
  }
  const built = await buildWeb(outDir);
  const rel = (f: string) => path.relative(root, f);
  console.log(`web page built in ${rel(outDir)}: ${built.files.filter((f) => !f.endsWith('.map') && !f.endsWith('.txt')).map(rel).join(', ')}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    console.error((e as Error).message);
    process.exitCode = 1;
  });
}
