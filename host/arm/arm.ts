// `haports import-arm`: an Azure Resource Manager template (or an exported deployment, or
// a list of resources) holding Microsoft.Network/loadBalancers → a haports configuration
// (docs/design.md "The configuration").
//
// The command: reads the files, imports (host/arm/importer.ts, which evaluates template
// expressions with host/arm/expressions.ts), runs the result through the core's validation
// (so a template that breaks an HA-ports caveat fails with the caveat's message), prints the
// configuration, or with --json one object: {config, warnings, info} or {errors, warnings,
// info}, each issue {path, message}. build/host/arm.mjs is the module the CLI and the tests load: it also
// exports the importer's and the evaluator's entry points.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Core } from '../lib/core.js';
import { importArm } from './importer.js';
import type { Issue } from './importer.js';

export { evaluateTemplateString, parseExpression, parseResourceId } from './expressions.js';
export { formatIssue, importArm, newHashKey } from './importer.js';
export type { ImportOptions, ImportResult, Issue } from './importer.js';

export const IMPORT_ARM_USAGE = `usage: haports import-arm TEMPLATE.json [--parameters PARAMS.json] [--set NAME=VALUE ...]
                          [--hash-key 0xKEY] [--json]

Turns an Azure Resource Manager template (or an exported deployment, or a list of
resources) holding Microsoft.Network/loadBalancers into a haports configuration, checks
it as 'haports validate' does, and prints it on standard output. Templates exported by
the Azure portal ("Export template") or 'az group export' import as they are: pools
declared as resources of their own (Microsoft.Network/loadBalancers/backendAddressPools,
named "LB/POOL") merge with the load balancer's own by name, and a Dynamic private
address that the export carries is used, with a warning (it may change).

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
  --json              print one JSON object instead, whatever the outcome:
                        {"config": {…}, "warnings": [{"path", "message"}], "info": [...]}
                      on success, {"errors": [...], "warnings": [...], "info": [...]}
                      otherwise (an unreadable file or a usage error included)

Errors and warnings go to standard error as 'path: reason', the path into TEMPLATE;
an error about a frontend, pool, backend, probe or rule names it. 'info:' lines note
what was merged. The configuration's own checks (the HA-ports caveats) give the
configuration path, then where in TEMPLATE the object came from.
Exit codes: 0 success, 1 the template cannot be turned into a valid configuration,
2 usage error or unreadable file.
`;

class UsageError extends Error {
  /** What was wrong, for --json: the template (`$`), `--parameters`, an option. */
  constructor(message: string, readonly path = '$') {
    super(message);
  }
}

function readJson(path: string, what: string, option = '$'): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e: any) {
    throw new UsageError(`cannot read ${what} ${path}: ${e.code ?? e.message}`, option);
  }
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (e: any) {
    throw new UsageError(`${path}: not JSON: ${e.message}`, option);
  }
}

/**
 * A line of the core's validation (`rules[1].frontend: reason`) as an issue of the template:
 * `path` where in the template the object came from (the configuration path when unknown),
 * `configPath` the core's, and the message naming the object when the core's does not.
 * `line` is its text form: the core's line, then `(from PATH)`.
 */
function fromCore(line: string, origins: Record<string, string>, config: Record<string, unknown>): { issue: Issue; line: string } {
  const at = line.indexOf(': ');
  const configPath = at < 0 ? '$' : line.slice(0, at);
  let message = at < 0 ? line : line.slice(at + 2);
  const m = /^((frontends|backendPools|probes|rules)\[(\d+)\](?:\.backends\[(\d+)\])?)/.exec(configPath);
  if (!m) return { issue: { path: configPath, message, configPath }, line };
  const list = config[m[2]] as { name?: unknown; backends?: { name?: unknown }[] }[] | undefined;
  const object = list?.[Number(m[3])];
  const what = m[4] !== undefined ? object?.backends?.[Number(m[4])] : object;
  const kinds: Record<string, string> = { frontends: 'frontend', backendPools: 'backend pool', probes: 'probe', rules: 'rule' };
  if (typeof what?.name === 'string' && !message.includes(`"${what.name}"`)) {
    message += m[4] !== undefined ? ` (backend "${what.name}" of pool "${String(object?.name)}")` : ` (${kinds[m[2]]} "${what.name}")`;
  }
  let key = m[1];
  if (!(key in origins)) key = key.replace(/\.backends\[\d+\]$/, '');
  const origin = origins[key];
  return {
    issue: { path: origin ?? configPath, message, configPath },
    line: `${configPath}: ${message}${origin !== undefined ? ` (from ${origin})` : ''}`,
  };
}

type Outcome = { config?: object; errors: Issue[]; warnings: Issue[]; info: Issue[] };

export async function armCommand(argv: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  // --json answers in JSON even when the arguments or the files are wrong.
  const json = argv.includes('--json');
  const answer = (o: Outcome, code: number): number => {
    out.write(JSON.stringify(o.config !== undefined
      ? { config: o.config, warnings: o.warnings, info: o.info }
      : { errors: o.errors, warnings: o.warnings, info: o.info }) + '\n');
    return code;
  };
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        parameters: { type: 'string' },
        set: { type: 'string', multiple: true },
        'hash-key': { type: 'string' },
        json: { type: 'boolean' },
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
      if (eq <= 0) throw new UsageError(`import-arm: --set ${s}: expected NAME=VALUE`, `--set ${s}`);
      set[s.slice(0, eq)] = s.slice(eq + 1);
    }
    const hashKey = values['hash-key'];
    if (hashKey !== undefined && !/^0[xX][0-9a-fA-F]{32}$/.test(hashKey)) {
      throw new UsageError('import-arm: --hash-key: expected "0x" and 32 hex digits', '--hash-key');
    }
    const template = readJson(positionals[0], 'template');
    const parameters = values.parameters !== undefined ? readJson(values.parameters, 'parameters file', '--parameters') : undefined;

    const result = importArm(template, { parameters, set, hashKey });
    const { warnings, info } = result.issues;
    if (result.config === null) {
      if (json) return answer({ errors: result.issues.errors, warnings, info }, 1);
      for (const w of result.warnings) err.write(`warning: ${w}\n`);
      for (const i of result.info) err.write(`info: ${i}\n`);
      for (const e of result.errors) err.write(`${e}\n`);
      return 1;
    }
    // The core's own checks (the HA-ports caveats among them), as `haports validate` runs them.
    const config = result.config as Record<string, unknown>;
    const checked = Core.check(config);
    const coreWarnings = checked.warnings.map((w) => fromCore(w, result.origins, config));
    const coreErrors = checked.errors.map((e) => fromCore(e, result.origins, config));
    // (The core's notes, where it has them: HA ports on an IPv6 frontend, say.)
    const coreInfo = ((checked as { info?: string[] }).info ?? []).map((i) => fromCore(i, result.origins, config));
    if (json) {
      const all = { warnings: [...warnings, ...coreWarnings.map((w) => w.issue)], info: [...info, ...coreInfo.map((i) => i.issue)] };
      return coreErrors.length > 0 ? answer({ errors: coreErrors.map((e) => e.issue), ...all }, 1) : answer({ config, errors: [], ...all }, 0);
    }
    for (const w of result.warnings) err.write(`warning: ${w}\n`);
    for (const w of coreWarnings) err.write(`warning: ${w.line}\n`);
    for (const i of result.info) err.write(`info: ${i}\n`);
    for (const i of coreInfo) err.write(`info: ${i.line}\n`);
    if (coreErrors.length > 0) {
      err.write(`haports: the configuration imported from ${positionals[0]} is not valid:\n`);
      for (const e of coreErrors) err.write(`  ${e.line}\n`);
      return 1;
    }
    out.write(JSON.stringify(config, null, 2) + '\n');
    return 0;
  } catch (e: any) {
    if (e instanceof UsageError || e?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || e?.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'
      || e?.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      if (json) return answer({ errors: [{ path: e instanceof UsageError ? e.path : '$', message: e.message }], warnings: [], info: [] }, 2);
      err.write(`haports: ${e.message}\n`);
      if (!(e instanceof UsageError)) err.write(IMPORT_ARM_USAGE);
      return 2;
    }
    throw e;
  }
}
