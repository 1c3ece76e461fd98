// proto-loader-gen-types writes extensionless relative imports; qgate compiles as NodeNext ESM with
// `.ts` import extensions, so add them. Run by `npm run proto:gen`.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';

const root = process.argv[2];
for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
  const file = path.join(entry.parentPath, entry.name);
  const text = await readFile(file, 'utf8');
  const fixed = text.replace(/(from '(\.{1,2}\/[^']+?))(?<!\.ts)'/g, "$1.ts'");
  if (fixed !== text) await writeFile(file, fixed);
}
