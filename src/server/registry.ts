/**
 * The generator registry: `<generatorsDir>/<name>/<version>/` folders, served with hot swap.
 *
 * - The active version of a generator is the pinned one (QGATE_PIN, or an admin pin) if it loads,
 *   else the newest version (natural order: 0002 > 0001, 10 > 9) that loads.
 * - New versions are found by fs.watch and, where that misses events, by a periodic rescan. A new
 *   version is loaded and warmed up with one inference before it is swapped in; the version it
 *   replaces is disposed only when its last in-flight request has released it.
 * - A version that fails to load is counted (qgate_model_reloads_total{result="failure"}), logged
 *   and skipped until its files change; whatever served before keeps serving.
 * - Names and versions are checked against NAME_PATTERN and models load only from folders inside
 *   the registry folder.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { isQgateError, QgateError } from '../errors.ts';
import { loadGenerator, type Generator } from '../generator/index.ts';
import { NAME_PATTERN, parseGeneratorManifest, validateName, type GeneratorManifest } from '../generator/manifest.ts';
import type { Logger } from '../log.ts';
import { mulberry32 } from '../random.ts';
import type { Metrics } from './metrics.ts';

export interface RegistryOptions {
  dir: string;
  /** name → version served instead of the newest. */
  pins: Record<string, string>;
  /** Generator used when a request names none ('' = first by name). */
  defaultGenerator: string;
  watch: boolean;
  /** Periodic rescan interval (0 = none). */
  rescanMs: number;
  metrics: Metrics;
  log: Logger;
  /** Loads one version folder (tests inject failures here); default loadGenerator. */
  load?: (dir: string) => Promise<Generator>;
}

interface Entry {
  name: string;
  version: string;
  generator: Generator;
  signature: string;
  refs: number;
  retired: boolean;
  loadedAt: string;
}

export interface Lease {
  readonly name: string;
  readonly version: string;
  readonly generator: Generator;
  release(): void;
}

export interface VersionInfo {
  version: string;
  /** active: serving by default; loaded: in memory for requests that ask for it; available: on disk; failed: did not load. */
  state: 'active' | 'loaded' | 'available' | 'failed';
  manifest?: GeneratorManifest;
  error?: { code: string; message: string };
  loadedAt?: string;
  /** What this process served from this version. */
  metrics: { images: number; attempts: number };
}

export interface GeneratorInfo {
  name: string;
  active: string | null;
  pinned: string | null;
  versions: VersionInfo[];
}

/** Natural order on versions, so '10' sorts after '9' and '0002' after '0001'. */
export function compareVersions(a: string, b: string): number {
  const pa = a.match(/\d+|\D+/g) ?? [];
  const pb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d/.test(x);
    const ny = /^\d/.test(y);
    if (nx && ny) {
      const d = Number(x) - Number(y);
      if (d !== 0) return d;
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Changes whenever a publisher touches the folder's files, so a fixed broken version is retried. */
async function signatureOf(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const f of ['manifest.json', 'model.json', 'weights.bin']) {
    try {
      const s = await stat(path.join(dir, f));
      parts.push(`${f}:${s.size}:${s.mtimeMs}`);
    } catch {
      parts.push(`${f}:-`);
    }
  }
  return parts.join('|');
}

async function listDirs(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory() && NAME_PATTERN.test(e.name) && !e.name.includes('..')).map((e) => e.name);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw e;
  }
}

/** Extra (non-active) versions kept loaded for requests that name them. */
const MAX_EXTRA_LOADED = 4;

export class GeneratorRegistry {
  private readonly o: RegistryOptions;
  private readonly load: (dir: string) => Promise<Generator>;
  private readonly active = new Map<string, Entry>();
  private readonly extra = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();
  /** `name/version` → signature and error of the last failed load. */
  private readonly failed = new Map<string, { signature: string; error: QgateError }>();
  /** name → versions on disk with their signatures, from the last scan. */
  private onDisk = new Map<string, Map<string, string>>();
  /** `name/version` → the manifest read from disk (for the listing of versions not loaded), by signature. */
  private readonly diskManifests = new Map<string, { signature: string; manifest: GeneratorManifest | undefined }>();
  private readonly adminPins = new Map<string, string | null>();
  private readonly served = new Map<string, { images: number; attempts: number }>();
  private readonly watchers = new Map<string, { watcher: FSWatcher; ino: number }>();
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private rescanAgain = false;
  private stopped = false;

  constructor(options: RegistryOptions) {
    this.o = options;
    this.load = options.load ?? loadGenerator;
  }

  /** Scans once (loading the active versions), then starts watching. */
  async start(): Promise<void> {
    await this.rescan();
    if (this.o.rescanMs > 0) {
      this.timer = setInterval(() => void this.rescan(), this.o.rescanMs);
      this.timer.unref();
    }
    await this.updateWatchers();
  }

  /** True when at least one generator has an active version. */
  get ready(): boolean {
    return this.active.size > 0;
  }

  /** Scans the folder and swaps in what changed. Calls made during a scan run one more scan after it. */
  rescan(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.scanning) {
      this.rescanAgain = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      do {
        this.rescanAgain = false;
        try {
          await this.scanOnce();
        } catch (e) {
          this.o.log.error({ err: e }, 'generator registry scan failed');
        }
      } while (this.rescanAgain && !this.stopped);
    })().finally(() => {
      this.scanning = undefined;
    });
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    const disk = new Map<string, Map<string, string>>();
    for (const name of await listDirs(this.o.dir)) {
      const versions = new Map<string, string>();
      for (const version of await listDirs(path.join(this.o.dir, name))) {
        const dir = path.join(this.o.dir, name, version);
        const signature = await signatureOf(dir);
        versions.set(version, signature);
        const key = `${name}/${version}`;
        if (this.diskManifests.get(key)?.signature !== signature) {
          let manifest: GeneratorManifest | undefined;
          try {
            manifest = parseGeneratorManifest(JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')), dir);
          } catch {
            manifest = undefined; // reported when the version is loaded
          }
          this.diskManifests.set(key, { signature, manifest });
        }
      }
      disk.set(name, versions);
    }
    this.onDisk = disk;
    for (const key of this.diskManifests.keys()) {
      const [n = '', v = ''] = key.split('/');
      if (!disk.get(n)?.has(v)) this.diskManifests.delete(key);
    }
    for (const [name, versions] of disk) {
      if (this.stopped) return;
      await this.chooseActive(name, versions);
    }
    // Extra versions whose folder vanished or changed are dropped; the next request reloads them.
    for (const [key, entry] of this.extra) {
      if (disk.get(entry.name)?.get(entry.version) !== entry.signature) this.retire(this.extra, key, entry);
    }
    await this.updateWatchers();
  }

  private pinOf(name: string): string | undefined {
    const admin = this.adminPins.get(name);
    if (admin !== undefined) return admin ?? undefined;
    return this.o.pins[name];
  }

  private async chooseActive(name: string, versions: Map<string, string>): Promise<void> {
    const current = this.active.get(name);
    const sorted = [...versions.keys()].sort(compareVersions).reverse();
    const pin = this.pinOf(name);
    const candidates = pin !== undefined && versions.has(pin) ? [pin, ...sorted.filter((v) => v !== pin)] : sorted;
    if (pin !== undefined && !versions.has(pin)) this.o.log.warn({ generator: name, version: pin }, 'pinned generator version is not in the registry; serving the newest');
    for (const version of candidates) {
      const signature = versions.get(version)!;
      if (current && current.version === version && current.signature === signature) return;
      const failed = this.failed.get(`${name}/${version}`);
      if (failed?.signature === signature) {
        if (current?.version === version) return; // rewritten broken: the loaded copy keeps serving
        continue;
      }
      try {
        const entry = await this.loadEntry(name, version, signature);
        if (this.stopped) {
          entry.generator.dispose();
          return;
        }
        this.active.set(name, entry);
        this.o.metrics.modelInfo.set({ kind: 'generator', name, version }, 1);
        this.o.log.info({ generator: name, version, replaced: current?.version }, `serving generator ${name}/${version}`);
        if (current) this.retire(undefined, name, current);
        return;
      } catch {
        if (current?.version === version) return;
      }
    }
    // No version loads (or none is left on disk): whatever is loaded keeps serving.
  }

  /** Loads and warms up one version, counting the result. Concurrent loads of one version share one promise. */
  private loadEntry(name: string, version: string, signature: string): Promise<Entry> {
    const key = `${name}/${version}`;
    const pending = this.loading.get(key);
    if (pending) return pending;
    const promise = (async () => {
      const dir = path.join(this.o.dir, name, version);
      try {
        const generator = await this.load(dir);
        try {
          // Warm-up: one inference, so the first request does not pay for kernel setup.
          const warm = tf.tidy(() => generator.sample(generator.latent(1, mulberry32(0))));
          await warm.data();
          warm.dispose();
        } catch (e) {
          generator.dispose();
          throw new QgateError('MODEL_INVALID', `${dir}: warm-up inference failed: ${(e as Error).message}`, { cause: e });
        }
        this.failed.delete(key);
        this.o.metrics.modelReloads.inc({ result: 'success' });
        return { name, version, generator, signature, refs: 0, retired: false, loadedAt: new Date().toISOString() };
      } catch (e) {
        const error = isQgateError(e) ? e : new QgateError('MODEL_INVALID', `${dir}: ${(e as Error).message}`, { cause: e });
        this.failed.set(key, { signature, error });
        this.o.metrics.modelReloads.inc({ result: 'failure' });
        this.o.log.error({ generator: name, version, code: error.code, err: error.message }, `generator ${name}/${version} failed to load; skipped`);
        throw error;
      }
    })().finally(() => this.loading.delete(key));
    this.loading.set(key, promise);
    return promise;
  }

  private retire(map: Map<string, Entry> | undefined, key: string, entry: Entry): void {
    if (map?.get(key) === entry) map.delete(key);
    if (!map) this.o.metrics.modelInfo.remove({ kind: 'generator', name: entry.name, version: entry.version });
    entry.retired = true;
    if (entry.refs === 0) entry.generator.dispose();
  }

  private resolveName(name: string | undefined): string {
    if (name) return validateName('generator', name);
    if (this.o.defaultGenerator) return this.o.defaultGenerator;
    const first = [...this.active.keys()].sort()[0];
    if (!first) throw new QgateError('UNAVAILABLE', 'no generator is loaded yet');
    return first;
  }

  /**
   * A generator to sample from, held until release(): the active version, or the one asked for
   * (loaded on first use). NOT_FOUND for an unknown name or version.
   */
  async acquire(name?: string, version?: string): Promise<Lease> {
    if (this.stopped) throw new QgateError('UNAVAILABLE', 'the service is shutting down');
    const n = this.resolveName(name);
    if (version) validateName('version', version);
    let entry = this.active.get(n);
    if (!version || entry?.version !== version) {
      if (!version) {
        if (!entry) throw new QgateError('NOT_FOUND', `no generator named '${n}'${this.onDisk.has(n) ? ' has a version that loads' : ''}`);
      } else {
        entry = await this.extraEntry(n, version);
      }
    }
    const e = entry;
    e.refs++;
    let released = false;
    return {
      name: e.name,
      version: e.version,
      generator: e.generator,
      release: () => {
        if (released) return;
        released = true;
        e.refs--;
        if (e.retired && e.refs === 0) e.generator.dispose();
      },
    };
  }

  private async extraEntry(name: string, version: string): Promise<Entry> {
    const key = `${name}/${version}`;
    const cached = this.extra.get(key);
    if (cached) {
      this.extra.delete(key);
      this.extra.set(key, cached); // most recently used last
      return cached;
    }
    const signature = await signatureOf(path.join(this.o.dir, name, version));
    if (!(await listDirs(path.join(this.o.dir, name))).includes(version)) {
      throw new QgateError('NOT_FOUND', `generator '${name}' has no version '${version}'`);
    }
    const failed = this.failed.get(key);
    if (failed?.signature === signature) {
      throw new QgateError('NOT_FOUND', `generator ${key} cannot be served: it failed to load (${failed.error.code})`);
    }
    let entry: Entry;
    try {
      entry = await this.loadEntry(name, version, signature);
    } catch (e) {
      throw new QgateError('NOT_FOUND', `generator ${key} cannot be served: ${(e as Error).message}`, { cause: e });
    }
    const raced = this.active.get(name)?.version === version ? this.active.get(name) : this.extra.get(key);
    if (raced) {
      entry.generator.dispose();
      return raced;
    }
    this.extra.set(key, entry);
    while (this.extra.size > MAX_EXTRA_LOADED) {
      const [oldKey, old] = this.extra.entries().next().value as [string, Entry];
      this.retire(this.extra, oldKey, old);
    }
    return entry;
  }

  /** Pins (or with null unpins) a generator's version at run time, then swaps accordingly. */
  async pin(name: string, version: string | null): Promise<GeneratorInfo> {
    validateName('generator', name);
    if (version !== null) validateName('version', version);
    if (!this.onDisk.has(name) && !this.active.has(name)) throw new QgateError('NOT_FOUND', `no generator named '${name}'`);
    if (version !== null && !this.onDisk.get(name)?.has(version)) throw new QgateError('NOT_FOUND', `generator '${name}' has no version '${version}'`);
    if (version === null) this.adminPins.delete(name);
    else this.adminPins.set(name, version);
    await this.rescan();
    return this.describe(name);
  }

  /**
   * The folder of a version found by the last scan, for reading files a publisher put next to the
   * model (metrics.jsonl). NOT_FOUND for a name or version the registry does not list.
   */
  versionDir(name: string, version: string): string {
    validateName('generator', name);
    validateName('version', version);
    if (!this.onDisk.has(name) && !this.active.has(name)) throw new QgateError('NOT_FOUND', `no generator named '${name}'`);
    if (!this.onDisk.get(name)?.has(version)) throw new QgateError('NOT_FOUND', `generator '${name}' has no version '${version}'`);
    return path.join(this.o.dir, name, version);
  }

  /** Counts what a generate call served from a version (for the listing). */
  recordServed(name: string, version: string, images: number, attempts: number): void {
    const key = `${name}/${version}`;
    const s = this.served.get(key) ?? { images: 0, attempts: 0 };
    s.images += images;
    s.attempts += attempts;
    this.served.set(key, s);
  }

  list(): GeneratorInfo[] {
    const names = new Set([...this.onDisk.keys(), ...this.active.keys()]);
    return [...names].sort().map((n) => this.describe(n));
  }

  describe(name: string): GeneratorInfo {
    validateName('generator', name);
    const versions = this.onDisk.get(name);
    const active = this.active.get(name);
    if (!versions && !active) throw new QgateError('NOT_FOUND', `no generator named '${name}'`);
    const all = new Set([...(versions?.keys() ?? []), ...(active ? [active.version] : [])]);
    const infos = [...all].sort(compareVersions).reverse().map((version): VersionInfo => {
      const key = `${name}/${version}`;
      const entry = active?.version === version ? active : this.extra.get(key);
      const failed = this.failed.get(key);
      const state = active?.version === version ? 'active' : entry ? 'loaded' : failed ? 'failed' : 'available';
      const manifest = entry?.generator.manifest ?? this.diskManifests.get(key)?.manifest;
      return {
        version,
        state,
        ...(manifest ? { manifest } : {}),
        ...(entry ? { loadedAt: entry.loadedAt } : {}),
        ...(failed && state !== 'active' ? { error: { code: failed.error.code, message: failed.error.message } } : {}),
        metrics: { ...(this.served.get(key) ?? { images: 0, attempts: 0 }) },
      };
    });
    return { name, active: active?.version ?? null, pinned: this.pinOf(name) ?? null, versions: infos };
  }

  /**
   * Watches the registry folder and each generator's folder. A watcher follows an inode, so a folder
   * that was removed (and perhaps recreated) gets a new watcher; while the registry folder itself is
   * missing, its parent is watched instead, so that its return is noticed without the periodic rescan.
   */
  private async updateWatchers(): Promise<void> {
    if (!this.o.watch || this.stopped) return;
    const inodeOf = (dir: string) => stat(dir).then((st) => (st.isDirectory() ? st.ino : undefined), () => undefined);
    const rootIno = await inodeOf(this.o.dir);
    const dirs = rootIno === undefined ? [path.dirname(this.o.dir)] : [this.o.dir, ...[...this.onDisk.keys()].map((n) => path.join(this.o.dir, n))];
    const wanted = new Map<string, number>();
    for (const dir of dirs) {
      const ino = await inodeOf(dir);
      if (ino !== undefined) wanted.set(dir, ino);
    }
    if (this.stopped) return;
    for (const [dir, w] of this.watchers) {
      if (wanted.get(dir) !== w.ino) {
        w.watcher.close();
        this.watchers.delete(dir);
      }
    }
    for (const [dir, ino] of wanted) {
      if (this.watchers.has(dir)) continue;
      try {
        const watcher = watch(dir, { persistent: false }, () => this.scheduleRescan());
        watcher.on('error', () => {
          watcher.close();
          if (this.watchers.get(dir)?.watcher === watcher) this.watchers.delete(dir);
        });
        this.watchers.set(dir, { watcher, ino });
      } catch {
        // Unwatchable, or gone since the stat: the periodic rescan still finds it later.
      }
    }
  }

  /** Publishing touches several files at once; one rescan shortly after the burst is enough. */
  private scheduleRescan(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.rescan(), 100);
    this.debounce.unref();
  }

  /** Stops watching and disposes every version once its in-flight requests have released it. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    for (const w of this.watchers.values()) w.watcher.close();
    this.watchers.clear();
    await this.scanning;
    await Promise.allSettled(this.loading.values());
    for (const [name, entry] of this.active) this.retire(undefined, name, entry);
    this.active.clear();
    for (const [key, entry] of this.extra) this.retire(this.extra, key, entry);
  }
}
