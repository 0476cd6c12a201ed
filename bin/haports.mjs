#!/usr/bin/env node
// The haports command line. The implementation is built from host/cli/cli.ts by `npm run build`.
import { existsSync } from 'node:fs';
const cli = new URL('../build/host/cli.mjs', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('haports: not built yet; run `npm install && npm run build` first\n');
  process.exit(2);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
