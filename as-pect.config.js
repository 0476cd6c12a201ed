// as-pect 8.1 configuration (ESM: package.json has "type": "module").
//
//   npx asp --config as-pect.config.js                               # every test/assembly/**/*.spec.ts
//   npx asp --config as-pect.config.js test/assembly/json.spec.ts    # only the given file(s)/glob(s)
//   ASP_FILES=json npx asp --config as-pect.config.js                # only specs whose path contains "json"
//                                                                    # (comma separated list of substrings)
//
// as-pect compiles each spec with `asc <spec> <includes...> --config <as-config> --target noCoverage`,
// where <as-config> defaults to ./as-pect.asconfig.json. That file carries the options the as-pect
// runtime needs (the @as-pect/assembly entry, @as-pect/transform, exportStart "_start", raw bindings,
// exported runtime + table). If the repository has no as-pect.asconfig.json (and no --as-config was
// given), this config writes an equivalent file to node_modules/.cache/haports-aspect/ and points the
// CLI at it, so that `npx asp --config as-pect.config.js` works on its own.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "fs";
import path from "path";
import process from "process";
import { createRequire } from "module";
import { program } from "commander"; // the same instance @as-pect/cli parsed argv with

const cwd = process.cwd();
const require = createRequire(import.meta.url);

/** asc options used when compiling each spec file. */
const ascOptions = {
  // required by the as-pect runtime / TestContext
  exportMemory: true,
  exportStart: "_start",
  exportRuntime: true,
  exportTable: true,
  bindings: "raw",
  outFile: "output.wasm",
  textFile: "output.wat",
  // test-friendly flags
  debug: true,
  runtime: "incremental", // real GC: the fuzz / large-input tests allocate a lot
  initialMemory: 16,
  use: ["RTRACE=1"],
  // NOTE: never add `--use abort=...`: as-pect reports failures through env.abort.
};

function ensureAsConfig() {
  const opts = program.opts();
  const requested = path.resolve(cwd, opts.asConfig || "./as-pect.asconfig.json");
  if (existsSync(requested)) return; // a real as-pect.asconfig.json wins
  // @as-pect/assembly has an "exports" map without ./package.json, so locate it on disk.
  const asAssembly = path.join(cwd, "node_modules/@as-pect/assembly");
  const generated = {
    targets: {
      coverage: {
        lib: [path.join(cwd, "node_modules/@as-covers/assembly/index.ts")],
        transform: [
          require.resolve("@as-covers/transform"),
          require.resolve("@as-pect/transform"),
        ],
      },
      noCoverage: {
        transform: [require.resolve("@as-pect/transform")],
      },
    },
    options: ascOptions,
    entries: [path.join(asAssembly, "assembly/index.ts")],
  };
  const dir = path.join(cwd, "node_modules/.cache/haports-aspect");
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "as-pect.asconfig.json");
  const text = JSON.stringify(generated, null, 2) + "\n";
  let current = null;
  try {
    current = readFileSync(file, "utf8");
  } catch (_) {
    // not generated yet
  }
  if (current !== text) {
    // atomic replace: concurrent runs never read a half-written file
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  }
  program.setOptionValue("asConfig", file); // read by the CLI after this module is imported
}
try {
  ensureAsConfig();
} catch (e) {
  // errors thrown while the CLI imports this file are otherwise buried under binaryen's source dump
  console.error("as-pect.config.js: " + (e && e.stack ? e.stack : e));
  process.exit(1);
}

// Positional arguments are globs that the CLI *adds* to `entries`; when some are given, run only
// those. ASP_FILES filters the default entries by substring instead.
const cliGlobs = program.args.length > 0;
const fileFilter = (process.env.ASP_FILES || "")
  .split(",")
  .map((s) => s.trim())
  .filter((s) => s.length > 0);

export default {
  /** Test entry points (globs). */
  entries: cliGlobs ? [] : ["test/assembly/**/*.spec.ts"],
  /** Globs of files added to every test compilation (shared helpers). */
  include: ["test/assembly/**/*.include.ts"],
  /** Regexps of entry paths to skip. */
  disclude: [
    /node_modules/,
    ...(fileFilter.length > 0 ? [new RegExp(`^(?!.*(?:${fileFilter.map(escapeRe).join("|")}))`)] : []),
  ],
  /** Instantiate the compiled test module. */
  async instantiate(memory, createImports, instantiate, binary) {
    return instantiate(binary, createImports({ env: { memory } }));
  },
  // coverage: ["assembly/**/*.ts"],
  outputBinary: false,
};

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
