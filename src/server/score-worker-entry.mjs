// The scoring worker's entry point, in plain JavaScript on purpose: under Node 20 a worker thread
// does not inherit the parent's `--import tsx` loader (execArgv or not, .ts fails to load), so the
// worker registers tsx itself before it imports the TypeScript.
import { register } from 'tsx/esm/api';

register();
await import('./score-worker.ts');
