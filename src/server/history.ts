/**
 * A published version's training history: the run's `metrics.jsonl`, when the trainer copied it
 * into the version folder next to the model. Lines are passed through as the trainer wrote them
 * (step lines `{step, epoch, lossD, lossG, q, noise, distance, stepMs}`, `{type: "fid"}` lines per
 * epoch, one `{type: "eval"}` line), so new fields reach the page without a server change.
 */
import { open } from 'node:fs/promises';
import path from 'node:path';

export const HISTORY_FILE = 'metrics.jsonl';
/** A long run logs a few thousand lines; more than this is not a history a page should draw. */
const MAX_BYTES = 8 * 1024 * 1024;
/** Step lines beyond this are thinned (evenly, keeping the last) so charts stay fast. */
const MAX_STEP_LINES = 2000;

export interface TrainingHistory {
  /** False when the version folder has no metrics.jsonl (the bootstrap generator, older runs). */
  available: boolean;
  lines: Array<Record<string, unknown>>;
  /** Step lines dropped by thinning (0 when none were). */
  thinned: number;
  /** Lines that were not JSON objects. */
  skipped: number;
}

export async function readTrainingHistory(versionDir: string): Promise<TrainingHistory> {
  let text: string;
  try {
    const file = await open(path.join(versionDir, HISTORY_FILE), 'r');
    try {
      const buf = Buffer.alloc(Math.min((await file.stat()).size, MAX_BYTES));
      const { bytesRead } = await file.read(buf, 0, buf.length, 0);
      text = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await file.close();
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { available: false, lines: [], thinned: 0, skipped: 0 };
    throw e;
  }
  const lines: Array<Record<string, unknown>> = [];
  let skipped = 0;
  for (const raw of text.split('\n')) {
    if (!raw.trim()) continue;
    try {
      const v: unknown = JSON.parse(raw);
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) lines.push(v as Record<string, unknown>);
      else skipped++;
    } catch {
      skipped++; // a line cut by the size cap, or a partial last line of a run still writing
    }
  }
  const steps = lines.filter((l) => l.type === undefined);
  if (steps.length <= MAX_STEP_LINES) return { available: true, lines, thinned: 0, skipped };
  const every = Math.ceil(steps.length / MAX_STEP_LINES);
  const keep = new Set(steps.filter((_, i) => i % every === 0 || i === steps.length - 1));
  const kept = lines.filter((l) => l.type !== undefined || keep.has(l));
  return { available: true, lines: kept, thinned: lines.length - kept.length, skipped };
}
