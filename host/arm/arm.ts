// `haports import-arm`: an Azure Resource Manager template (or an exported deployment, or
// a list of resources) holding Microsoft.Network/loadBalancers → a haports configuration
// (docs/design.md "The configuration").
//
// The command: reads the files, imports (host/arm/importer.ts, which evaluates template
// expressions with host/arm/expressions.ts), runs the result through the core's validation
// (so a template that breaks an HA-ports caveat fails with the caveat's message), prints the
// configuration. build/host/arm.mjs is the module the CLI and the tests load: it also
// exports the importer's and the evaluator's entry points.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Core } from '../lib/core.js';
import { importArm } from './importer.js';

export { evaluateTemplateString, parseExpression, parseResourceId } from './expressions.js';
export { importArm, newHashKey } from './importer.js';
export type { ImportOptions, ImportResult } from './importer.js';

export const IMPORT_ARM_USAGE = `usage: haports import-arm TEMPLATE.json [--parameters PARAMS.json] [--set NAME=VALUE ...]
                          [--hash-key 0xKEY]

Turns an Azure Resource Manager template (or an exported deployment, or a list of
resources) holding Microsoft.Network/loadBalancers into a haports configuration, checks
it as 'haports validate' does, and prints it on standard output.

  --parameters FILE   parameter values: a parameters file ({"parameters": {"x": {"value": …}}})
                      or a plain {"x": value} object
  --set NAME=VALUE    a template parameter (overrides the file and the defaults), or an
                      address known only at deployment:
                        --set frontend.NAME=IP   a frontend IP configuration's address
                        --set backend.NIC/IPCONFIG=IP  a network interface's address
                      (with several load balancers, frontends are named LB/NAME)
  --hash-key KEY      the configuration's secret hashKey ("0x" and 32 hex digits); by
                      default a fresh random one. Deploy the same file (the same key)
                      on every instance, so that they agree on every flow.

Errors and warnings go to standard error as 'path: reason', the path into TEMPLATE.
Exit codes: 0 success, 1 the template cannot be turned into a valid configuration,
2 usage error or unreadable file.
`;

class UsageError extends Error {}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e: any) {
    throw new UsageError(`cannot read ${what} ${path}: ${e.code ?? e.message}`);
  }
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (e: any) {
    throw new UsageError(`${path}: not JSON: ${e.message}`);
  }
}

/** Appends where a configuration error's object came from in the template. */
function withOrigin(line: string, origins: Record<string, string>): string {
  const m = /^((?:frontends|backendPools|probes|rules)\[\d+\](?:\.backends\[\d+\])?)/.exec(line);
  if (!m) return line;
  let key = m[1];
  if (!(key in origins)) key = key.replace(/\.backends\[\d+\]$/, '');
  return key in origins ? `${line} (from ${origins[key]})` : line;
}

export async function armCommand(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        parameters: { type: 'string' },
        set: { type: 'string', multiple: true },
        'hash-key': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      out.write(IMPORT_ARM_USAGE);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError('import-arm: give exactly one template file');
    const set: Record<string, string> = {};
    for (const s of values.set ?? []) {
      const eq = s.indexOf('=');
      if (eq <= 0) throw new UsageError(`import-arm: --set ${s}: expected NAME=VALUE`);
      set[s.slice(0, eq)] = s.slice(eq + 1);
    }
    const template = readJson(positionals[0], 'template');
    const parameters = values.parameters !== undefined ? readJson(values.parameters, 'parameters file') : undefined;

    const hashKey = values['hash-key'];
    if (hashKey !== undefined && !/^0[xX][0-9a-fA-F]{32}$/.test(hashKey)) {
      throw new UsageError('import-arm: --hash-key: expected "0x" and 32 hex digits');
    }
    const result = importArm(template, { parameters, set, hashKey });
    for (const w of result.warnings) err.write(`warning: ${w}\n`);
    if (result.config === null) {
      for (const e of result.errors) err.write(`${e}\n`);
      return 1;
    }
    // The core's own checks (the HA-ports caveats among them), as `haports validate` runs them.
    const checked = Core.check(result.config);
    for (const w of checked.warnings) err.write(`warning: ${withOrigin(w, result.origins)}\n`);
    if (checked.errors.length > 0) {
      err.write(`haports: the configuration imported from ${positionals[0]} is not valid:\n`);
      for (const e of checked.errors) err.write(`  ${withOrigin(e, result.origins)}\n`);
      return 1;
    }
    out.write(JSON.stringify(result.config, null, 2) + '\n');
    return 0;
  } catch (e: any) {
    if (e instanceof UsageError || e?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || e?.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'
      || e?.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      err.write(`haports: ${e.message}\n`);
      if (!(e instanceof UsageError)) err.write(IMPORT_ARM_USAGE);
      return 2;
    }
    throw e;
  }
}
