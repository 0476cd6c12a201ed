// `haports import-arm`: an Azure Resource Manager template (or an exported deployment, or
// a list of resources) holding Microsoft.Network/loadBalancers → a haports configuration
// (DESIGN §2.1).
//
// Three parts, read top to bottom:
//   1. Template expressions: a tokenizer and parser for the "[...]" language and an
//      evaluator for the functions such templates use (parameters, variables,
//      resourceId, concat, format, toLower, …). Evaluation is lazy: only the values the
//      import reads are evaluated, so a template whose VMs call uniqueString() or
//      reference() still imports, and an unsupported function is reported where it is,
//      with the property that needed it.
//   2. The mapping: load balancers (frontendIPConfigurations, backendAddressPools,
//      probes, loadBalancingRules) and the network interfaces that join their pools →
//      frontends, backendPools, probes, rules. Values known only at deployment (dynamic
//      private addresses) come from `--set frontend.NAME=IP` / `--set backend.NAME=IP`.
//   3. The command: reads the files, imports, runs the result through the core's
//      validation (so a template that breaks an HA-ports caveat fails with the caveat's
//      message), prints the configuration.
//
// Errors and warnings are `path: reason`, the path into the input file
// (`resources[2].properties.loadBalancingRules[0].properties.protocol`).

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { Core } from '../lib/core.js';

/** The hash seed of every imported configuration: fixed, so every instance agrees. */
/** A fresh secret hashKey (docs/flowtable.md): the imported configuration carries it,
 *  to be deployed as is on every instance. */
export function newHashKey(): string {
  return `0x${randomBytes(16).toString('hex')}`;
}

// ---- 1. Template expressions ----------------------------------------------------------------

/** A failure while evaluating; `origin` is the path of the text that failed, once known. */
class Fail extends Error {
  /** How to do without the value (pass a parameter, say). */
  hint?: string;
  constructor(public reason: string, public origin?: string) {
    super(reason);
  }
}

type Token =
  | { t: 'str'; v: string; at: number }
  | { t: 'num'; v: number; at: number }
  | { t: 'id'; v: string; at: number }
  | { t: 'p'; v: string; at: number }; // ( ) , . [ ]

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const bad = (msg: string, at: number): never => {
    throw new Fail(`invalid template expression: ${msg} at character ${at + 1} of "${src}"`);
  };
  while (i < src.length) {
    const c = src[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') { i++; continue; }
    const at = i;
    if (c === "'") {
      let s = '';
      i++;
      for (;;) {
        if (i >= src.length) bad('unterminated string', at);
        if (src[i] === "'") {
          if (src[i + 1] === "'") { s += "'"; i += 2; continue; }
          i++;
          break;
        }
        s += src[i++];
      }
      out.push({ t: 'str', v: s, at });
    } else if (/[0-9]/.test(c) || (c === '-' && /[0-9]/.test(src[i + 1] ?? ''))) {
      i++;
      while (i < src.length && /[0-9]/.test(src[i])) i++;
      if (src[i] === '.' && /[0-9]/.test(src[i + 1] ?? '')) bad('only integers are supported', at);
      out.push({ t: 'num', v: Number(src.slice(at, i)), at });
    } else if (/[A-Za-z_]/.test(c)) {
      while (i < src.length && /[A-Za-z0-9_]/.test(src[i])) i++;
      out.push({ t: 'id', v: src.slice(at, i), at });
    } else if ('(),.[]'.includes(c)) {
      out.push({ t: 'p', v: c, at });
      i++;
    } else {
      bad(`unexpected ${JSON.stringify(c)}`, at);
    }
  }
  return out;
}

type Expr =
  | { k: 'lit'; v: Value }
  | { k: 'call'; name: string; args: Expr[] }
  | { k: 'prop'; obj: Expr; name: string }
  | { k: 'index'; obj: Expr; index: Expr };

/** Parses the text between the outer brackets of a "[...]" string. */
export function parseExpression(src: string): Expr {
  const toks = tokenize(src);
  let p = 0;
  const bad = (msg: string): never => {
    const at = p < toks.length ? toks[p].at + 1 : src.length + 1;
    throw new Fail(`invalid template expression: ${msg} at character ${at} of "${src}"`);
  };
  const isP = (v: string) => p < toks.length && toks[p].t === 'p' && toks[p].v === v;
  const expect = (v: string) => { if (!isP(v)) bad(`expected "${v}"`); p++; };

  function primary(): Expr {
    const tok = toks[p];
    if (!tok) return bad('unexpected end');
    if (tok.t === 'str' || tok.t === 'num') { p++; return { k: 'lit', v: tok.v }; }
    if (tok.t !== 'id') return bad(`unexpected "${tok.v}"`);
    p++;
    let name = tok.v;
    // A user-defined function: namespace.name(...)
    if (isP('.') && toks[p + 1]?.t === 'id' && toks[p + 2]?.t === 'p' && toks[p + 2].v === '(') {
      name += '.' + toks[p + 1].v;
      p += 2;
    }
    if (!isP('(')) return bad(`"${name}" is not a function call`);
    p++;
    const args: Expr[] = [];
    if (!isP(')')) {
      for (;;) {
        args.push(expr());
        if (isP(',')) { p++; continue; }
        break;
      }
    }
    expect(')');
    return { k: 'call', name, args };
  }

  function expr(): Expr {
    let e = primary();
    for (;;) {
      if (isP('.')) {
        p++;
        const tok = toks[p];
        if (!tok || tok.t !== 'id') bad('expected a property name');
        p++;
        e = { k: 'prop', obj: e, name: tok.v as string };
      } else if (isP('[')) {
        p++;
        const index = expr();
        expect(']');
        e = { k: 'index', obj: e, index };
      } else {
        return e;
      }
    }
  }

  const e = expr();
  if (p < toks.length) bad(`unexpected "${toks[p].v}"`);
  return e;
}

type Value = null | boolean | number | string | Value[] | { [k: string]: Value };

/** Is `s` an expression (its text without the brackets) or a literal (its value)? */
function splitTemplateString(s: string): { expr: string } | { literal: string } {
  if (s.startsWith('[[')) return { literal: s.slice(1) };
  if (s.startsWith('[') && s.endsWith(']')) return { expr: s.slice(1, -1) };
  return { literal: s };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Property of `obj` named `key`, ARM-style: exact match first, then ignoring case. */
function keyOf(obj: Record<string, unknown>, key: string): string | undefined {
  if (Object.prototype.hasOwnProperty.call(obj, key)) return key;
  const lower = key.toLowerCase();
  return Object.keys(obj).find((k) => k.toLowerCase() === lower);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'number') return `the integer ${v}`;
  if (typeof v === 'boolean') return `the boolean ${v}`;
  return `the string ${JSON.stringify(v)}`;
}

/** .NET's text of a value, as concat()/format()/string() write it. */
function textOf(v: Value): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number') return String(v);
  if (v === null) return '';
  return JSON.stringify(v);
}

const PATH_WORD = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
function join(path: string, key: string): string {
  const k = PATH_WORD.test(key) ? key : `[${JSON.stringify(key)}]`;
  if (path === '') return k;
  return k.startsWith('[') ? path + k : `${path}.${k}`;
}

/** Is `path` inside `outer` (or the same)? */
function within(path: string, outer: string): boolean {
  return outer === '' || path === outer || path.startsWith(outer + '.') || path.startsWith(outer + '[');
}
const at = (path: string, i: number) => `${path}[${i}]`;

/** A resource id's provider part, parsed: Microsoft.Network/loadBalancers/lb1/probes/p1. */
interface ResourceRef {
  namespace: string;
  types: string[];
  names: string[];
}

/** The canonical id resourceId() produces (subscription and resource group are placeholders). */
function canonicalId(namespace: string, types: string[], names: string[], sub = '{sub}', rg = '{rg}'): string {
  let s = `/subscriptions/${sub}/resourceGroups/${rg}/providers/${namespace}`;
  types.forEach((t, i) => { s += `/${t}/${names[i]}`; });
  return s;
}

/** Parses any resource id (canonical, or a real one from an export); null when it is not one. */
export function parseResourceId(id: string): ResourceRef | null {
  const at = id.toLowerCase().lastIndexOf('/providers/');
  if (at < 0) return null;
  const parts = id.slice(at + '/providers/'.length).split('/').filter((s) => s.length > 0);
  if (parts.length < 3 || parts.length % 2 === 0) return null;
  const ref: ResourceRef = { namespace: parts[0], types: [], names: [] };
  for (let i = 1; i < parts.length; i += 2) {
    ref.types.push(parts[i]);
    ref.names.push(parts[i + 1]);
  }
  return ref;
}

/** Matching key of a reference: type path and names, case-insensitive as ARM compares them. */
function refKey(ref: ResourceRef): string {
  return `${ref.namespace}/${ref.types.join('/')}|${ref.names.join('/')}`.toLowerCase();
}

/** The parameter values a user gives: a parameters file, or a plain {name: value} map. */
interface GivenParameter { value?: unknown; keyVault?: boolean }

/**
 * Reads parameter values: a parameters file ({"parameters": {name: {"value": v}}}), the
 * {name: {"value": v}} map of a deployment (`entries`), or a plain {name: v} map.
 */
function readParameterValues(input: unknown, what: string, entries = false): Map<string, GivenParameter> {
  const out = new Map<string, GivenParameter>();
  if (input === undefined || input === null) return out;
  if (!isObject(input)) throw new Fail(`expected an object of parameter values, got ${typeName(input)}`, what);
  const isEntry = (v: unknown) => isObject(v) && ('value' in v || 'reference' in v);
  const inner = input.parameters;
  const fileShape = entries || (isObject(inner) && (
    (typeof input.$schema === 'string' && /deploymentParameters/i.test(input.$schema))
    || Object.values(inner).every(isEntry)));
  const map = entries ? input : fileShape ? (inner as Record<string, unknown>) : input;
  for (const [name, v] of Object.entries(map)) {
    if (fileShape) {
      if (!isEntry(v)) throw new Fail(`parameter "${name}": expected {"value": …}`, join(what, name));
      const o = v as Record<string, unknown>;
      out.set(name.toLowerCase(), 'value' in o ? { value: o.value } : { keyVault: true });
    } else {
      out.set(name.toLowerCase(), { value: v });
    }
  }
  return out;
}

/** What reference() returns for a load balancer of the template: its children's names and ids. */
const REFERENCE_VIEW = Symbol('reference view');

class Evaluator {
  private paramDecls: Record<string, unknown>;
  private variables: Record<string, unknown>;
  private paramCache = new Map<string, Value | Fail>();
  private varCache = new Map<string, Value | Fail>();
  private inProgress: string[] = [];
  /** Load balancers of the template by canonical key, for reference(); set after they are read. */
  loadBalancers = new Map<string, () => Value>();
  /** Symbolic names (languageVersion 2.0 templates) → canonical key. */
  symbols = new Map<string, string>();

  constructor(
    template: Record<string, unknown>,
    private rootPath: string,
    private sources: Map<string, GivenParameter>[], // highest precedence first
    private setValues: Map<string, string>,
  ) {
    this.paramDecls = isObject(template.parameters) ? template.parameters : {};
    this.variables = isObject(template.variables) ? template.variables : {};
  }

  hasParameter(name: string): boolean {
    return keyOf(this.paramDecls, name) !== undefined;
  }

  parameterNames(): string[] {
    return Object.keys(this.paramDecls);
  }

  /** Evaluates one string of the template at `path`. */
  evalString(s: string, path: string): Value {
    const parts = splitTemplateString(s);
    if ('literal' in parts) return parts.literal;
    try {
      return this.evalExpr(parseExpression(parts.expr));
    } catch (e) {
      if (e instanceof Fail && e.origin === undefined) e.origin = path;
      throw e;
    }
  }

  /** Evaluates a template value and everything in it. */
  evalDeep(node: unknown, path: string): Value {
    if (typeof node === 'string') return this.evalString(node, path);
    if (Array.isArray(node)) return node.map((v, i) => this.evalDeep(v, at(path, i)));
    if (isObject(node)) {
      const out: Record<string, Value> = {};
      for (const [k, v] of Object.entries(node)) out[k] = this.evalDeep(v, join(path, k));
      return out;
    }
    if (node === undefined) return null;
    return node as Value;
  }

  private parameter(nameArg: Value): Value {
    if (typeof nameArg !== 'string') throw new Fail(`parameters() needs a parameter name, got ${typeName(nameArg)}`);
    const key = keyOf(this.paramDecls, nameArg);
    if (key === undefined) throw new Fail(`no parameter "${nameArg}" in the template`);
    const cacheKey = key.toLowerCase();
    const cached = this.paramCache.get(cacheKey);
    if (cached instanceof Fail) throw cached;
    if (cached !== undefined) return cached;
    let v: Value;
    try {
      v = this.computeParameter(key);
    } catch (e) {
      if (e instanceof Fail) this.paramCache.set(cacheKey, e);
      throw e;
    }
    this.paramCache.set(cacheKey, v);
    return v;
  }

  private computeParameter(key: string): Value {
    const decl = isObject(this.paramDecls[key]) ? (this.paramDecls[key] as Record<string, unknown>) : {};
    const type = typeof decl.type === 'string' ? decl.type.toLowerCase() : 'string';
    const declPath = join(join(this.rootPath, 'parameters'), key);
    let value: Value | undefined;
    const set = this.setValues.get(key.toLowerCase());
    if (set !== undefined) {
      value = coerceSetValue(set, type, key);
    } else {
      for (const source of this.sources) {
        const given = source.get(key.toLowerCase());
        if (given === undefined) continue;
        if (given.keyVault) {
          throw new Fail(`parameter "${key}" comes from a Key Vault reference; pass its value with --set ${key}=VALUE`);
        }
        value = given.value as Value;
        break;
      }
    }
    if (value === undefined) {
      const dk = keyOf(decl, 'defaultValue');
      if (dk === undefined) {
        throw new Fail(`parameter "${key}" has no value; pass it in a --parameters file or with --set ${key}=VALUE`);
      }
      try {
        this.enter(`parameters('${key}')`);
        value = this.evalDeep(decl[dk], join(declPath, dk));
      } catch (e) {
        if (e instanceof Fail && e.hint === undefined) {
          e.hint = `pass a value for parameter "${key}" in a --parameters file or with --set ${key}=VALUE`;
        }
        throw e;
      } finally {
        this.leave();
      }
    }
    const allowedKey = keyOf(decl, 'allowedValues');
    if (allowedKey !== undefined && Array.isArray(decl[allowedKey])) {
      const allowed = decl[allowedKey] as Value[];
      if (!allowed.some((a) => JSON.stringify(a) === JSON.stringify(value))) {
        throw new Fail(`parameter "${key}" is ${JSON.stringify(value)}, not one of its allowedValues ${JSON.stringify(allowed)}`,
          join(declPath, allowedKey));
      }
    }
    return value;
  }

  private variable(nameArg: Value): Value {
    if (typeof nameArg !== 'string') throw new Fail(`variables() needs a variable name, got ${typeName(nameArg)}`);
    const key = keyOf(this.variables, nameArg);
    if (key === undefined || key === 'copy') {
      const copy = this.variables.copy;
      if (Array.isArray(copy) && copy.some((c) => isObject(c) && typeof c.name === 'string' && c.name.toLowerCase() === nameArg.toLowerCase())) {
        throw new Fail(`variable "${nameArg}" is made by a variable copy loop, which is not supported`);
      }
      throw new Fail(`no variable "${nameArg}" in the template`);
    }
    const cacheKey = key.toLowerCase();
    const cached = this.varCache.get(cacheKey);
    if (cached instanceof Fail) throw cached;
    if (cached !== undefined) return cached;
    let v: Value;
    try {
      this.enter(`variables('${key}')`);
      v = this.evalDeep(this.variables[key], join(join(this.rootPath, 'variables'), key));
    } catch (e) {
      if (e instanceof Fail) this.varCache.set(cacheKey, e);
      throw e;
    } finally {
      this.leave();
    }
    this.varCache.set(cacheKey, v);
    return v;
  }

  private enter(what: string): void {
    if (this.inProgress.includes(what)) {
      const cycle = [...this.inProgress.slice(this.inProgress.indexOf(what)), what].join(' → ');
      throw new Fail(`circular reference: ${cycle}`);
    }
    this.inProgress.push(what);
  }

  private leave(): void {
    this.inProgress.pop();
  }

  private evalExpr(e: Expr): Value {
    switch (e.k) {
      case 'lit': return e.v;
      case 'prop': return this.member(this.evalExpr(e.obj), e.name);
      case 'index': {
        const obj = this.evalExpr(e.obj);
        const index = this.evalExpr(e.index);
        if (Array.isArray(obj)) {
          if (typeof index !== 'number') throw new Fail(`an array index must be an integer, got ${typeName(index)}`);
          if (index < 0 || index >= obj.length) throw new Fail(`index ${index} is outside the array (length ${obj.length})`);
          return obj[index];
        }
        if (typeof index === 'string') return this.member(obj, index);
        throw new Fail(`cannot index ${typeName(obj)} with ${typeName(index)}`);
      }
      case 'call': return this.call(e.name, e.args);
    }
  }

  private member(obj: Value, name: string): Value {
    if (!isObject(obj)) throw new Fail(`cannot read property "${name}" of ${typeName(obj)}`);
    const key = keyOf(obj, name);
    if (key === undefined) {
      if ((obj as any)[REFERENCE_VIEW]) {
        throw new Fail(`reference(): "${name}" of a load balancer is known only after deployment; only the names and ids `
          + 'of its frontendIPConfigurations, backendAddressPools, probes and loadBalancingRules are evaluated');
      }
      throw new Fail(`no property "${name}"`);
    }
    return obj[key];
  }

  private call(name: string, argExprs: Expr[]): Value {
    const fn = name.toLowerCase();
    const n = argExprs.length;
    const arity = (min: number, max = min) => {
      if (n < min || n > max) {
        throw new Fail(`${name}() takes ${min === max ? min : `${min} to ${max === Infinity ? 'any number of' : max}`} argument${max === 1 ? '' : 's'}, got ${n}`);
      }
    };
    const args = () => argExprs.map((a) => this.evalExpr(a));
    const str = (v: Value, what: string): string => {
      if (typeof v !== 'string') throw new Fail(`${name}(): ${what} must be a string, got ${typeName(v)}`);
      return v;
    };
    switch (fn) {
      case 'parameters': arity(1); return this.parameter(this.evalExpr(argExprs[0]));
      case 'variables': arity(1); return this.variable(this.evalExpr(argExprs[0]));
      case 'resourceid': arity(2, Infinity); return this.resourceId(args());
      case 'reference': arity(1, 3); return this.reference(args());
      case 'concat': {
        const vs = args();
        if (vs.length > 0 && Array.isArray(vs[0])) {
          return vs.flatMap((v) => {
            if (!Array.isArray(v)) throw new Fail(`concat(): cannot join arrays with ${typeName(v)}`);
            return v;
          });
        }
        return vs.map((v) => {
          if (Array.isArray(v) || isObject(v)) throw new Fail(`concat(): cannot join strings with ${typeName(v)}`);
          return textOf(v);
        }).join('');
      }
      case 'format': {
        arity(1, Infinity);
        const [fmt, ...rest] = args();
        return formatString(str(fmt, 'the format'), rest);
      }
      case 'tolower': arity(1); return str(args()[0], 'the argument').toLowerCase();
      case 'toupper': arity(1); return str(args()[0], 'the argument').toUpperCase();
      case 'string': { arity(1); return textOf(args()[0]); }
      case 'int': {
        arity(1);
        const v = args()[0];
        if (typeof v === 'number') return v;
        if (typeof v === 'string' && /^-?[0-9]+$/.test(v.trim())) return Number(v.trim());
        throw new Fail(`int(): cannot convert ${typeName(v)}`);
      }
      case 'bool': {
        arity(1);
        const v = args()[0];
        if (typeof v === 'boolean') return v;
        if (typeof v === 'number') return v !== 0;
        if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
        throw new Fail(`bool(): cannot convert ${typeName(v)}`);
      }
      case 'true': arity(0); return true;
      case 'false': arity(0); return false;
      case 'null': arity(0); return null;
      case 'equals': { arity(2); const [a, b] = args(); return JSON.stringify(a) === JSON.stringify(b); }
      case 'not': {
        arity(1);
        const v = args()[0];
        if (typeof v !== 'boolean') throw new Fail(`not() needs a boolean, got ${typeName(v)}`);
        return !v;
      }
      case 'and': case 'or': {
        arity(2, Infinity);
        const vs = args();
        for (const v of vs) if (typeof v !== 'boolean') throw new Fail(`${name}() needs booleans, got ${typeName(v)}`);
        return fn === 'and' ? vs.every((v) => v) : vs.some((v) => v);
      }
      case 'if': {
        arity(3);
        const c = this.evalExpr(argExprs[0]);
        if (typeof c !== 'boolean') throw new Fail(`if() needs a boolean condition, got ${typeName(c)}`);
        return this.evalExpr(argExprs[c ? 1 : 2]); // only the branch taken is evaluated
      }
      case 'empty': {
        arity(1);
        const v = args()[0];
        if (v === null || v === '') return true;
        if (Array.isArray(v)) return v.length === 0;
        if (isObject(v)) return Object.keys(v).length === 0;
        return false;
      }
      case 'length': {
        arity(1);
        const v = args()[0];
        if (typeof v === 'string' || Array.isArray(v)) return v.length;
        if (isObject(v)) return Object.keys(v).length;
        throw new Fail(`length() needs a string, array or object, got ${typeName(v)}`);
      }
      case 'createarray': return args();
      case 'createobject': {
        const vs = args();
        if (vs.length % 2 !== 0) throw new Fail('createObject() takes pairs of key and value');
        const o: Record<string, Value> = {};
        for (let i = 0; i < vs.length; i += 2) o[str(vs[i], 'a key')] = vs[i + 1];
        return o;
      }
      default:
        throw new Fail(`unsupported template function ${name}()`);
    }
  }

  /** resourceId([subscriptionId], [resourceGroupName], resourceType, name1, name2, …) */
  private resourceId(vs: Value[]): string {
    const strs = vs.map((v, i) => {
      if (typeof v !== 'string') throw new Fail(`resourceId(): argument ${i + 1} must be a string, got ${typeName(v)}`);
      return v;
    });
    const typeAt = strs.findIndex((s) => s.includes('/'));
    if (typeAt < 0 || typeAt > 2) throw new Fail('resourceId(): no resource type (like Microsoft.Network/loadBalancers) among the arguments');
    const [namespace, ...types] = strs[typeAt].split('/');
    const names = strs.slice(typeAt + 1).flatMap((s) => s.split('/'));
    if (types.length === 0 || names.length !== types.length) {
      throw new Fail(`resourceId(): type ${strs[typeAt]} needs ${types.length} name${types.length === 1 ? '' : 's'}, got ${names.length}`);
    }
    const sub = typeAt === 2 ? strs[0] : undefined;
    const rg = typeAt === 2 ? strs[1] : typeAt === 1 ? strs[0] : undefined;
    return canonicalId(namespace, types, names, sub, rg);
  }

  /** reference() of a load balancer of the template: its children's names and ids; else unsupported. */
  private reference(vs: Value[]): Value {
    const [target, , full] = vs;
    if (typeof target === 'string' && !(typeof full === 'string' && full.toLowerCase() === 'full')) {
      let key = this.symbols.get(target.toLowerCase());
      if (key === undefined) {
        const ref = parseResourceId(target);
        if (ref) key = refKey(ref);
      }
      const view = key === undefined ? undefined : this.loadBalancers.get(key);
      if (view) return view();
    }
    throw new Fail('unsupported template function reference()');
  }
}

function formatString(fmt: string, args: Value[]): string {
  let out = '';
  for (let i = 0; i < fmt.length; i++) {
    const c = fmt[i];
    if (c === '{' && fmt[i + 1] === '{') { out += '{'; i++; continue; }
    if (c === '}' && fmt[i + 1] === '}') { out += '}'; i++; continue; }
    if (c === '{') {
      const end = fmt.indexOf('}', i);
      const m = end < 0 ? null : /^\s*([0-9]+)\s*$/.exec(fmt.slice(i + 1, end));
      if (!m) {
        if (end > 0 && /^\s*[0-9]+\s*[:,]/.test(fmt.slice(i + 1, end))) {
          throw new Fail(`format(): format specifiers like "${fmt.slice(i, end + 1)}" are not supported`);
        }
        throw new Fail(`format(): bad placeholder in "${fmt}"`);
      }
      const n = Number(m[1]);
      if (n >= args.length) throw new Fail(`format(): "{${n}}" but only ${args.length} argument${args.length === 1 ? '' : 's'}`);
      out += textOf(args[n]);
      i = end;
      continue;
    }
    out += c;
  }
  return out;
}

function coerceSetValue(text: string, type: string, name: string): Value {
  switch (type) {
    case 'int':
      if (!/^-?[0-9]+$/.test(text.trim())) throw new Fail(`--set ${name}: parameter "${name}" is an int, got "${text}"`, '--set');
      return Number(text.trim());
    case 'bool':
      if (!/^(true|false)$/i.test(text.trim())) throw new Fail(`--set ${name}: parameter "${name}" is a bool, got "${text}"`, '--set');
      return text.trim().toLowerCase() === 'true';
    case 'array': case 'object': case 'secureobject':
      try {
        return JSON.parse(text) as Value;
      } catch {
        throw new Fail(`--set ${name}: parameter "${name}" is an ${type}; give it as JSON`, '--set');
      }
    default:
      return text;
  }
}

// ---- 2. The mapping ---------------------------------------------------------------------------

/** A value of the input at a path; `evaluated` once template expressions in it are resolved. */
class Node {
  constructor(readonly raw: unknown, readonly path: string, readonly evaluated: boolean) {}
}

export interface ImportOptions {
  /** A parameters file object ({"parameters": {name: {"value": …}}}) or a plain {name: value} map. */
  parameters?: unknown;
  /** --set NAME=VALUE: template parameters, frontend.NAME and backend.NAME addresses. */
  set?: Record<string, string>;
  /** The configuration's hashKey; default: a fresh random one. */
  hashKey?: string;
}

export interface ImportResult {
  config: object | null;
  errors: string[];
  warnings: string[];
  /** Where each configuration object came from: "rules[1]" → "resources[2].properties.loadBalancingRules[1]". */
  origins: Record<string, string>;
}

interface Frontend { name: string; address?: string; path: string; isPublic: boolean }
interface Backend { name: string; address?: string; adminState?: string; path: string }
interface Pool { name: string; path: string; backends: Backend[]; drainPeriodSeconds?: number; joined: number }
interface Probe { name: string; path: string; out: Record<string, unknown>; noHealthyBackends?: string }
interface LoadBalancer { name: string; path: string; node: Node; sku?: string }

const LB_TYPE = 'microsoft.network/loadbalancers';
const NIC_TYPE = 'microsoft.network/networkinterfaces';
const MAPPED_CHILDREN: Record<string, string> = {
  frontendipconfigurations: 'frontendIPConfigurations',
  backendaddresspools: 'backendAddressPools',
  probes: 'probes',
  loadbalancingrules: 'loadBalancingRules',
};
const UNMAPPED_CHILDREN: Record<string, string> = {
  inboundnatrules: 'haports has no inbound NAT rules',
  inboundnatpools: 'haports has no inbound NAT pools',
  outboundrules: 'haports has no outbound (SNAT) rules',
};

/** Properties read, or known not to matter (read-only state, back-references, placement). */
const KNOWN = {
  resource: ['type', 'apiVersion', 'name', 'location', 'sku', 'properties', 'dependsOn', 'tags', 'zones', 'comments',
    'condition', 'copy', 'resources', 'id', 'etag', 'metadata', 'scope', 'kind'],
  lb: ['frontendIPConfigurations', 'backendAddressPools', 'probes', 'loadBalancingRules', 'provisioningState',
    'resourceGuid', 'inboundNatRules', 'inboundNatPools', 'outboundRules', 'copy'],
  child: ['name', 'properties', 'id', 'etag', 'type', 'zones'],
  frontend: ['privateIPAddress', 'privateIPAllocationMethod', 'privateIPAddressVersion', 'subnet', 'publicIPAddress',
    'publicIPPrefix', 'provisioningState', 'inboundNatRules', 'inboundNatPools', 'outboundRules', 'loadBalancingRules'],
  pool: ['loadBalancerBackendAddresses', 'backendIPConfigurations', 'drainPeriodInSeconds', 'loadBalancingRules',
    'outboundRule', 'outboundRules', 'inboundNatRules', 'provisioningState', 'location', 'virtualNetwork', 'syncMode'],
  address: ['ipAddress', 'virtualNetwork', 'subnet', 'networkInterfaceIPConfiguration', 'adminState',
    'inboundNatRulesPortMapping', 'provisioningState'],
  probe: ['protocol', 'port', 'intervalInSeconds', 'numberOfProbes', 'probeThreshold', 'requestPath',
    'noHealthyBackendsBehavior', 'loadBalancingRules', 'provisioningState'],
  rule: ['frontendIPConfiguration', 'backendAddressPool', 'backendAddressPools', 'probe', 'protocol', 'frontendPort',
    'backendPort', 'enableFloatingIP', 'loadDistribution', 'idleTimeoutInMinutes', 'enableTcpReset',
    'disableOutboundSnat', 'provisioningState'],
};

class Importer {
  errors: string[] = [];
  warnings: string[] = [];
  origins: Record<string, string> = {};
  private seen = new Set<string>();
  private ev!: Evaluator;
  private setFrontends = new Map<string, { value: string; used: boolean }>();
  private setBackends = new Map<string, { value: string; used: boolean }>();

  error(path: string, reason: string): void {
    const line = `${path || '$'}: ${reason}`;
    if (this.seen.has(line)) return;
    this.seen.add(line);
    this.errors.push(line);
  }

  warn(path: string, reason: string): void {
    const line = `${path || '$'}: ${reason}`;
    if (!this.warnings.includes(line)) this.warnings.push(line);
  }

  /**
   * Records a failed evaluation: where it failed and, if elsewhere, what needed it; `hint`
   * says how to do without the value.
   */
  private failed(e: unknown, needed: string, hint?: string): undefined {
    if (!(e instanceof Fail)) throw e;
    const origin = e.origin ?? needed;
    const key = `${origin}: ${e.reason}`;
    if (this.seen.has(key)) return undefined;
    this.seen.add(key);
    if (origin === '--set') {
      this.errors.push(e.reason);
      return undefined;
    }
    const hints = [e.hint, hint && `${hint} instead`].filter((h) => h);
    this.errors.push(key + (within(origin, needed) ? '' : ` (needed for ${needed})`) + (hints.length ? `; ${hints.join('; or ')}` : ''));
    return undefined;
  }

  // -- reading the input (every reader records its own errors and returns undefined on failure) --

  private shallow(n: Node): Node | undefined {
    if (n.evaluated || typeof n.raw !== 'string') return n;
    try {
      return new Node(this.ev.evalString(n.raw, n.path), n.path, true);
    } catch (e) {
      return this.failed(e, n.path);
    }
  }

  private value(n: Node, hint?: string): Value | undefined {
    if (n.evaluated) return n.raw as Value;
    try {
      return this.ev.evalDeep(n.raw, n.path);
    } catch (e) {
      return this.failed(e, n.path, hint);
    }
  }

  /** Field `key` of object node `n` (ARM property names ignore case); undefined when absent. */
  private field(n: Node, key: string): Node | undefined {
    if (!isObject(n.raw)) return undefined;
    const k = keyOf(n.raw, key);
    if (k === undefined || n.raw[k] === undefined) return undefined;
    return new Node(n.raw[k], join(n.path, k), n.evaluated);
  }

  /** An object field, evaluated one level; undefined (reported when `required`) otherwise. */
  private object(n: Node, key: string, required = false): Node | undefined {
    const f = this.field(n, key);
    if (!f) {
      if (required) this.error(join(n.path, key), 'required');
      return undefined;
    }
    const s = this.shallow(f);
    if (!s) return undefined;
    if (!isObject(s.raw)) {
      this.error(s.path, `expected an object, got ${typeName(s.raw)}`);
      return undefined;
    }
    return s;
  }

  private items(n: Node, key: string): Node[] {
    const f = this.field(n, key);
    if (!f) return [];
    const s = this.shallow(f);
    if (!s) return [];
    if (!Array.isArray(s.raw)) {
      this.error(s.path, `expected an array, got ${typeName(s.raw)}`);
      return [];
    }
    return s.raw.map((v, i) => new Node(v, at(s.path, i), s.evaluated));
  }

  private string(n: Node, key: string, required = false): string | undefined {
    const f = this.field(n, key);
    if (!f) {
      if (required) this.error(join(n.path, key), 'required');
      return undefined;
    }
    const v = this.value(f);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') {
      this.error(f.path, `expected a string, got ${typeName(v)}`);
      return undefined;
    }
    return v;
  }

  private int(n: Node, key: string, required = false): number | undefined {
    const f = this.field(n, key);
    if (!f) {
      if (required) this.error(join(n.path, key), 'required');
      return undefined;
    }
    const v = this.value(f);
    if (v === undefined) return undefined;
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    if (typeof v === 'string' && /^-?[0-9]+$/.test(v.trim())) return Number(v.trim());
    this.error(f.path, `expected an integer, got ${typeName(v)}`);
    return undefined;
  }

  private bool(n: Node, key: string): boolean | undefined {
    const f = this.field(n, key);
    if (!f) return undefined;
    const v = this.value(f);
    if (v === undefined) return undefined;
    if (typeof v === 'boolean') return v;
    if (typeof v === 'string' && /^(true|false)$/i.test(v.trim())) return v.trim().toLowerCase() === 'true';
    this.error(f.path, `expected true or false, got ${typeName(v)}`);
    return undefined;
  }

  /** One of `options` (matched ignoring case), returned as written in `options`. */
  private choice(n: Node, key: string, options: string[], required = false): string | undefined {
    const s = this.string(n, key, required);
    if (s === undefined) return undefined;
    const i = options.findIndex((o) => o.toLowerCase() === s.toLowerCase());
    if (i < 0) {
      this.error(join(n.path, keyOf(n.raw as Record<string, unknown>, key) ?? key),
        `expected ${options.map((o) => `"${o}"`).join(', ').replace(/, ([^,]*)$/, ' or $1')}, got "${s}"`);
      return undefined;
    }
    return options[i];
  }

  /** `{"id": "..."}` at `key`, parsed as a resource reference. */
  private ref(n: Node, key: string, required = false): { ref: ResourceRef; id: string; path: string } | undefined {
    const o = this.object(n, key, required);
    return o ? this.refOf(o) : undefined;
  }

  /** An `{"id": "..."}` node, parsed as a resource reference. */
  private refOf(item: Node): { ref: ResourceRef; id: string; path: string } | undefined {
    const o = this.shallow(item);
    if (!o) return undefined;
    if (!isObject(o.raw)) {
      this.error(o.path, `expected {"id": …}, got ${typeName(o.raw)}`);
      return undefined;
    }
    const id = this.string(o, 'id', true);
    if (id === undefined) return undefined;
    const ref = parseResourceId(id);
    const path = join(o.path, keyOf(o.raw as Record<string, unknown>, 'id') ?? 'id');
    if (!ref) {
      this.error(path, `not a resource id: "${id}"`);
      return undefined;
    }
    return { ref, id, path };
  }

  /** Warns about properties that are neither read nor known not to matter (unless switched off). */
  private unmapped(n: Node | undefined, known: string[], what: string): void {
    if (!n || !isObject(n.raw)) return;
    const lower = known.map((k) => k.toLowerCase());
    const off = (v: unknown) => v === false || v === null || v === '' || (Array.isArray(v) && v.length === 0)
      || (isObject(v) && Object.keys(v).length === 0);
    for (const k of Object.keys(n.raw)) {
      if (!lower.includes(k.toLowerCase()) && !off(n.raw[k])) this.warn(join(n.path, k), `not imported: haports has no equivalent of this ${what} property`);
    }
  }

  private nonEmpty(n: Node, key: string): boolean {
    const f = this.field(n, key);
    if (!f) return false;
    return !(Array.isArray(f.raw) && f.raw.length === 0);
  }

  // -- the import --

  run(input: unknown, opts: ImportOptions): object | null {
    // Where the resources are: a template, a deployment, an export, a resource list.
    let template: Record<string, unknown> = {};
    let root = '';
    let resources: Node[] = [];
    let embedded: unknown;
    let fromTemplate = true;
    const listOf = (arr: unknown[], path: string) => arr.map((r, i) => new Node(r, path === '' ? `[${i}]` : at(path, i), false));
    if (Array.isArray(input)) {
      resources = listOf(input, '');
      fromTemplate = false;
    } else if (!isObject(input)) {
      this.error('$', `expected an ARM template (an object with "resources"), got ${typeName(input)}`);
      return null;
    } else if (isObject(input.properties) && isObject(input.properties.template)) {
      template = input.properties.template;
      root = 'properties.template';
      embedded = input.properties.parameters;
    } else if (isObject(input.properties) && input.properties.templateLink !== undefined) {
      this.error('properties.templateLink', 'the deployment links its template instead of holding it; '
        + 'import the linked template file, with the deployment\'s parameters as --parameters');
      return null;
    } else if (isObject(input.template) && input.resources === undefined) {
      template = input.template;
      root = 'template';
      embedded = input.parameters;
    } else if (input.resources !== undefined) {
      template = input;
    } else if (Array.isArray(input.value)) {
      resources = listOf(input.value, 'value');
      fromTemplate = false;
    } else if (typeof input.type === 'string') {
      resources = [new Node(input, '', false)];
      fromTemplate = false;
    } else {
      this.error('$', 'not an ARM template, deployment or resource list: no "resources"');
      return null;
    }
    if (fromTemplate) {
      const rs = template.resources;
      const rpath = join(root, 'resources');
      if (Array.isArray(rs)) resources = listOf(rs, rpath);
      else if (isObject(rs)) resources = Object.entries(rs).map(([sym, r]) => new Node(r, join(rpath, sym), false));
      else if (rs !== undefined) this.error(rpath, `expected an array of resources, got ${typeName(rs)}`);
    }

    // Parameter values: --set, then the --parameters file, then the deployment's own, then defaults.
    const sources: Map<string, GivenParameter>[] = [];
    try {
      sources.push(readParameterValues(opts.parameters, '--parameters'));
      if (embedded !== undefined) sources.push(readParameterValues(embedded, join(root.replace(/\.?template$/, ''), 'parameters'), true));
    } catch (e) {
      this.failed(e, '$');
      return null;
    }
    const setParams = new Map<string, string>();
    this.ev = new Evaluator(template, root, sources, setParams);
    for (const [key, value] of Object.entries(opts.set ?? {})) {
      const m = /^(frontend|backend)\.(.+)$/.exec(key);
      if (m) {
        const to = m[1] === 'frontend' ? this.setFrontends : this.setBackends;
        if (isIP(value.trim()) === 0) this.error(`--set ${key}`, `"${value}" is not an IPv4 or IPv6 address`);
        to.set(m[2], { value: value.trim(), used: false });
      } else if (!this.ev.hasParameter(key)) {
        const names = this.ev.parameterNames();
        this.error(`--set ${key}`, `no parameter "${key}" in the template`
          + (names.length ? ` (parameters: ${names.join(', ')})` : '')
          + '; addresses are set with frontend.NAME=IP or backend.NAME=IP');
      } else {
        setParams.set(key.toLowerCase(), value);
      }
    }
    for (const source of sources.slice(0, 1)) {
      for (const name of source.keys()) {
        if (!this.ev.hasParameter(name)) this.warn('--parameters', `"${name}" is not a parameter of the template; ignored`);
      }
    }

    // Sort the resources out.
    const lbs: LoadBalancer[] = [];
    const nics: Node[] = [];
    for (const r of resources) this.classify(r, lbs, nics, null);
    if (lbs.length === 0) {
      if (this.errors.length === 0) this.error(join(root, 'resources'), 'no Microsoft.Network/loadBalancers resource to import');
      return null;
    }
    const names = new Map<string, string>();
    for (const lb of lbs) {
      const other = names.get(lb.name.toLowerCase());
      if (other) this.error(join(lb.path, 'name'), `load balancer "${lb.name}" is also defined at ${other}`);
      names.set(lb.name.toLowerCase(), lb.path);
    }
    const prefixed = lbs.length > 1;

    // Children of every load balancer, by reference key → output object.
    const frontends: Frontend[] = [];
    const pools: Pool[] = [];
    const probes: Probe[] = [];
    const feByKey = new Map<string, Frontend>();
    const poolByKey = new Map<string, Pool>();
    const probeByKey = new Map<string, Probe>();
    const nicRefs: { pool: Pool; nic: string; ipconfig: string; path: string }[] = [];
    const ruleNodes: { lb: LoadBalancer; node: Node }[] = [];
    const childKey = (lb: string, type: string, name: string) => `microsoft.network/loadbalancers/${type}|${lb}/${name}`.toLowerCase();

    for (const lb of lbs) {
      const prefix = prefixed ? `${lb.name}/` : '';
      const props = this.object(lb.node, 'properties', true);
      if (!props) continue;
      this.unmapped(props, KNOWN.lb, 'load balancer');
      if (this.field(props, 'copy')) {
        this.error(this.field(props, 'copy')!.path, 'property copy loops are not supported; list the frontends, pools, probes and rules one by one');
      }
      for (const [key, why] of Object.entries(UNMAPPED_CHILDREN)) {
        const f = this.field(props, key);
        if (f && this.nonEmpty(props, key)) this.warn(f.path, `not imported: ${why}`);
      }
      const views: Record<string, Value[]> = {};

      // frontendIPConfigurations → frontends
      views.frontendIPConfigurations = [];
      for (const item of this.items(props, 'frontendIPConfigurations')) {
        const s = this.shallow(item);
        if (!s) continue;
        const name = this.string(s, 'name', true);
        if (name === undefined) continue;
        this.unmapped(s, KNOWN.child, 'frontend IP configuration');
        const fe = this.frontend(s, prefix + name);
        frontends.push(fe);
        this.origins[`frontends[${frontends.length - 1}]`] = s.path;
        feByKey.set(childKey(lb.name, 'frontendIPConfigurations', name), fe);
        views.frontendIPConfigurations.push({ name, id: canonicalId('Microsoft.Network', ['loadBalancers', 'frontendIPConfigurations'], [lb.name, name]) });
      }

      // backendAddressPools → backendPools (their NIC members come later)
      views.backendAddressPools = [];
      for (const item of this.items(props, 'backendAddressPools')) {
        const s = this.shallow(item);
        if (!s) continue;
        const name = this.string(s, 'name', true);
        if (name === undefined) continue;
        this.unmapped(s, KNOWN.child, 'backend pool');
        const pool: Pool = { name: prefix + name, path: s.path, backends: [], joined: 0 };
        pools.push(pool);
        this.origins[`backendPools[${pools.length - 1}]`] = s.path;
        poolByKey.set(childKey(lb.name, 'backendAddressPools', name), pool);
        views.backendAddressPools.push({ name, id: canonicalId('Microsoft.Network', ['loadBalancers', 'backendAddressPools'], [lb.name, name]) });
        const pp = this.object(s, 'properties');
        if (!pp) continue;
        this.unmapped(pp, KNOWN.pool, 'backend pool');
        const drain = this.int(pp, 'drainPeriodInSeconds');
        if (drain !== undefined) pool.drainPeriodSeconds = drain;
        for (const entry of this.items(pp, 'loadBalancerBackendAddresses')) this.addressEntry(entry, pool, nicRefs);
        for (const ipc of this.items(pp, 'backendIPConfigurations')) {
          const r = this.refOf(ipc);
          if (r) this.nicRef(r.ref, r.path, pool, nicRefs);
        }
      }

      // probes
      views.probes = [];
      for (const item of this.items(props, 'probes')) {
        const s = this.shallow(item);
        if (!s) continue;
        const name = this.string(s, 'name', true);
        if (name === undefined) continue;
        this.unmapped(s, KNOWN.child, 'probe');
        const probe = this.probe(s, prefix + name);
        probes.push(probe);
        this.origins[`probes[${probes.length - 1}]`] = s.path;
        probeByKey.set(childKey(lb.name, 'probes', name), probe);
        views.probes.push({ name, id: canonicalId('Microsoft.Network', ['loadBalancers', 'probes'], [lb.name, name]) });
      }

      // loadBalancingRules: resolved once every load balancer's children are known
      views.loadBalancingRules = [];
      for (const item of this.items(props, 'loadBalancingRules')) {
        ruleNodes.push({ lb, node: item });
        const name = isObject(item.raw) && typeof item.raw.name === 'string' && !item.raw.name.startsWith('[') ? item.raw.name : undefined;
        if (name) views.loadBalancingRules.push({ name, id: canonicalId('Microsoft.Network', ['loadBalancers', 'loadBalancingRules'], [lb.name, name]) });
      }
      const view: Record<string, Value> = { ...views };
      Object.defineProperty(view, REFERENCE_VIEW, { value: true });
      this.ev.loadBalancers.set(refKey({ namespace: 'Microsoft.Network', types: ['loadBalancers'], names: [lb.name] }), () => view);
    }

    // Network interfaces of the template whose IP configurations join a pool.
    for (const nic of nics) this.networkInterface(nic, poolByKey);
    // Pool members known by reference only (an export's backendIPConfigurations): --set or an error.
    for (const r of nicRefs) {
      const name = `${r.nic}/${r.ipconfig}`;
      if (r.pool.backends.some((b) => b.name.toLowerCase() === name.toLowerCase())) continue;
      const set = this.setAddress(this.setBackends, name);
      if (set === undefined) {
        this.error(r.path, `network interface IP configuration "${name}" of pool "${r.pool.name}" is not in the template; `
          + `pass its address with --set backend.${name}=<ip>`);
      } else {
        r.pool.backends.push({ name, address: set, path: r.path });
      }
    }

    // loadBalancingRules → rules
    const rules: Record<string, unknown>[] = [];
    for (const { lb, node } of ruleNodes) {
      const rule = this.rule(lb, node, prefixed ? `${lb.name}/` : '', feByKey, poolByKey, probeByKey);
      if (rule) {
        rules.push(rule);
        this.origins[`rules[${rules.length - 1}]`] = node.path;
      }
    }

    // --set addresses that named nothing.
    for (const [name, s] of this.setFrontends) {
      if (!s.used) {
        this.error(`--set frontend.${name}`, `no frontend named "${name}"`
          + (frontends.length ? ` (frontends: ${frontends.map((f) => f.name).join(', ')})` : ''));
      }
    }
    for (const [name, s] of this.setBackends) {
      if (!s.used) this.error(`--set backend.${name}`, `no backend named "${name}" in any pool`);
    }
    for (const pool of pools) {
      if (pool.backends.length === 0 && pool.joined === 0) {
        this.warn(pool.path, `backend pool "${pool.name}" has no backends: no loadBalancerBackendAddresses and no network interface of the template joins it`);
      }
    }

    if (this.errors.length > 0) return null;
    const config = {
      hashKey: opts.hashKey ?? newHashKey(),
      frontends: frontends.map((f) => ({ name: f.name, address: f.address })),
      backendPools: pools.map((p, i) => {
        p.backends.forEach((b, j) => { this.origins[`backendPools[${i}].backends[${j}]`] = b.path; });
        return {
          name: p.name,
          ...(p.drainPeriodSeconds !== undefined ? { drainPeriodSeconds: p.drainPeriodSeconds } : {}),
          backends: p.backends.map((b) => ({ name: b.name, address: b.address, ...(b.adminState ? { adminState: b.adminState } : {}) })),
        };
      }),
      probes: probes.map((p) => p.out),
      rules,
    };
    return config;
  }

  /** Sorts one resource into load balancers and network interfaces; reports what is not imported. */
  private classify(r: Node, lbs: LoadBalancer[], nics: Node[], parentType: string | null): void {
    if (!isObject(r.raw)) {
      this.error(r.path, `expected a resource object, got ${typeName(r.raw)}`);
      return;
    }
    const cond = this.field(r, 'condition');
    if (cond) {
      const v = this.value(cond);
      if (v === undefined) return;
      if (v === false || (typeof v === 'string' && v.toLowerCase() === 'false')) return;
    }
    let type = this.string(r, 'type', true);
    if (type === undefined) return;
    if (parentType && !type.includes('/')) type = `${parentType}/${type}`;
    const t = type.toLowerCase();
    if (t === LB_TYPE) {
      if (this.field(r, 'copy')) {
        this.error(this.field(r, 'copy')!.path, 'resource copy loops are not supported; declare each load balancer on its own');
        return;
      }
      const name = this.string(r, 'name', true);
      if (name === undefined) return;
      this.unmapped(r, KNOWN.resource, 'resource');
      const lb: LoadBalancer = { name, path: r.path, node: r };
      lbs.push(lb);
      if (r.path.startsWith('resources.') || r.path.includes('.resources.')) {
        this.ev.symbols.set(r.path.slice(r.path.lastIndexOf('.') + 1).toLowerCase(),
          refKey({ namespace: 'Microsoft.Network', types: ['loadBalancers'], names: [name] }));
      }
      this.compatibility(lb);
      for (const child of this.items(r, 'resources')) this.classify(child, lbs, nics, type);
    } else if (t.startsWith(LB_TYPE + '/')) {
      const sub = t.slice(LB_TYPE.length + 1);
      if (MAPPED_CHILDREN[sub]) {
        this.error(r.path, `a separate ${type} resource is not supported (nested load balancer child resources are out of scope); `
          + `declare it in the load balancer's properties.${MAPPED_CHILDREN[sub]}`);
      } else {
        this.warn(r.path, `not imported: ${UNMAPPED_CHILDREN[sub] ?? `haports has no equivalent of ${type}`}`);
      }
    } else if (t === NIC_TYPE) {
      nics.push(r);
    } else if (t === 'microsoft.compute/virtualmachinescalesets') {
      if (/loadBalancerBackendAddressPools/i.test(JSON.stringify(r.raw))) {
        this.warn(r.path, 'scale set instances join backend pools when they are created; their addresses are not imported '
          + '(give them with the pool\'s loadBalancerBackendAddresses)');
      }
    } else if (t === 'microsoft.resources/deployments') {
      if (/Microsoft\.Network\/loadBalancers/i.test(JSON.stringify(r.raw))) {
        this.warn(r.path, 'nested deployment not imported; import its template on its own');
      }
    }
  }

  /** Azure-compatibility notes: HA ports needs the Standard SKU. */
  private compatibility(lb: LoadBalancer): void {
    const sku = this.field(lb.node, 'sku');
    if (!sku) return;
    try {
      const v = sku.evaluated ? sku.raw : this.ev.evalDeep(sku.raw, sku.path);
      if (isObject(v) && typeof v.name === 'string') lb.sku = v.name;
    } catch (e) {
      if (!(e instanceof Fail)) throw e;
    }
  }

  private setAddress(map: Map<string, { value: string; used: boolean }>, name: string): string | undefined {
    for (const [k, s] of map) {
      if (k.toLowerCase() === name.toLowerCase()) {
        s.used = true;
        return s.value;
      }
    }
    return undefined;
  }

  private frontend(s: Node, name: string): Frontend {
    const fe: Frontend = { name, path: s.path, isPublic: false };
    const p = this.object(s, 'properties');
    if (p) {
      this.unmapped(p, KNOWN.frontend, 'frontend IP configuration');
      fe.isPublic = this.field(p, 'publicIPAddress') !== undefined || this.field(p, 'publicIPPrefix') !== undefined;
    }
    const set = this.setAddress(this.setFrontends, name);
    if (set !== undefined) {
      fe.address = set;
      return fe;
    }
    const hint = `pass --set frontend.${name}=<ip>`;
    if (!p) {
      this.error(join(s.path, 'properties'), `frontend "${name}" has no private address; ${hint}`);
      return fe;
    }
    if (fe.isPublic) {
      const f = this.field(p, 'publicIPAddress') ?? this.field(p, 'publicIPPrefix')!;
      this.error(f.path, `frontend "${name}" is public: its address belongs to a public IP resource, known only after deployment; ${hint}`);
      return fe;
    }
    const method = this.choice(p, 'privateIPAllocationMethod', ['Static', 'Dynamic']);
    if (method === 'Dynamic') {
      this.error(this.field(p, 'privateIPAllocationMethod')!.path,
        `frontend "${name}" has a dynamic private address, known only after deployment; ${hint}`);
      return fe;
    }
    const addr = this.field(p, 'privateIPAddress');
    if (!addr) {
      this.error(join(p.path, 'privateIPAddress'), `frontend "${name}" has no private address (Azure assigns one at deployment); ${hint}`);
      return fe;
    }
    const v = this.value(addr, hint);
    if (v === undefined) return fe;
    if (typeof v !== 'string') this.error(addr.path, `expected an address string, got ${typeName(v)}`);
    else fe.address = v;
    return fe;
  }

  /** One loadBalancerBackendAddresses entry: by address, or naming a NIC IP configuration. */
  private addressEntry(entry: Node, pool: Pool, nicRefs: { pool: Pool; nic: string; ipconfig: string; path: string }[]): void {
    pool.joined++;
    const s = this.shallow(entry);
    if (!s) return;
    const name = this.string(s, 'name', true);
    if (name === undefined) return;
    this.unmapped(s, KNOWN.child, 'backend address');
    const p = this.object(s, 'properties');
    if (p) this.unmapped(p, KNOWN.address, 'backend address');
    const backend: Backend = { name, path: s.path };
    const admin = p ? this.choice(p, 'adminState', ['None', 'Up', 'Down']) : undefined;
    if (admin === 'Down') {
      backend.adminState = 'draining';
      this.warn(this.field(p!, 'adminState')!.path, 'adminState Down imported as "draining": no new flows, existing flows stay');
    } else if (admin === 'Up') {
      this.warn(this.field(p!, 'adminState')!.path, 'adminState Up (receive traffic whatever the probe says) has no haports equivalent; imported as "up"');
    }
    const set = this.setAddress(this.setBackends, name);
    if (set !== undefined) {
      backend.address = set;
    } else if (p && this.field(p, 'ipAddress')) {
      const v = this.string(p, 'ipAddress');
      if (v === undefined) return;
      backend.address = v;
    } else if (p && this.field(p, 'networkInterfaceIPConfiguration')) {
      const r = this.ref(p, 'networkInterfaceIPConfiguration');
      if (r) this.nicRef(r.ref, r.path, pool, nicRefs);
      return;
    } else {
      this.error(join(p ? p.path : join(s.path, 'properties'), 'ipAddress'),
        `backend address "${name}" of pool "${pool.name}" has no ipAddress; pass --set backend.${name}=<ip>`);
      return;
    }
    if (!pool.backends.some((b) => b.name.toLowerCase() === name.toLowerCase())) pool.backends.push(backend);
  }

  /** A pool member given by the id of a NIC IP configuration. */
  private nicRef(ref: ResourceRef, path: string, pool: Pool, nicRefs: { pool: Pool; nic: string; ipconfig: string; path: string }[]): void {
    const t = `${ref.namespace}/${ref.types.join('/')}`.toLowerCase();
    if (t !== 'microsoft.network/networkinterfaces/ipconfigurations') {
      this.warn(path, `not imported: a pool member of type ${ref.namespace}/${ref.types.join('/')} (only network interface IP configurations are)`);
      return;
    }
    pool.joined++;
    nicRefs.push({ pool, nic: ref.names[0], ipconfig: ref.names[1], path });
  }

  private networkInterface(nic: Node, poolByKey: Map<string, Pool>): void {
    const props = this.object(nic, 'properties');
    if (!props) return;
    let nicName: string | undefined;
    let nameFailed = false;
    for (const ipc of this.items(props, 'ipConfigurations')) {
      const s = this.shallow(ipc);
      if (!s) continue;
      const p = this.object(s, 'properties');
      if (!p) continue;
      const joined: Pool[] = [];
      for (const item of this.items(p, 'loadBalancerBackendAddressPools')) {
        const r = this.refOf(item);
        if (!r) continue;
        const pool = poolByKey.get(refKey(r.ref));
        if (pool && !joined.includes(pool)) joined.push(pool);
      }
      if (joined.length === 0) continue;
      for (const pool of joined) pool.joined++;
      if (this.field(nic, 'copy')) {
        this.error(this.field(nic, 'copy')!.path, `resource copy loops are not supported: this network interface joins pool "${joined[0].name}"; `
          + 'declare each network interface on its own, or list the pool\'s loadBalancerBackendAddresses');
        return;
      }
      if (nicName === undefined && !nameFailed) {
        nicName = this.string(nic, 'name', true);
        nameFailed = nicName === undefined;
      }
      const ipcName = this.string(s, 'name', true);
      if (nicName === undefined || ipcName === undefined) continue;
      const name = `${nicName}/${ipcName}`;
      let address = this.setAddress(this.setBackends, name);
      if (address === undefined) {
        const method = this.choice(p, 'privateIPAllocationMethod', ['Static', 'Dynamic']);
        const addr = this.field(p, 'privateIPAddress');
        const hint = `pass --set backend.${name}=<ip>`;
        const pools = joined.map((j) => `"${j.name}"`).join(', ');
        if (method === 'Dynamic') {
          this.error(this.field(p, 'privateIPAllocationMethod')!.path,
            `network interface IP configuration "${name}" (in pool ${pools}) has a dynamic private address, known only after deployment; ${hint}`);
          continue;
        }
        if (!addr) {
          this.error(join(p.path, 'privateIPAddress'),
            `network interface IP configuration "${name}" (in pool ${pools}) has no private address; ${hint}`);
          continue;
        }
        const v = this.value(addr, hint);
        if (v === undefined) continue;
        if (typeof v !== 'string') {
          this.error(addr.path, `expected an address string, got ${typeName(v)}`);
          continue;
        }
        address = v;
      }
      for (const pool of joined) {
        if (!pool.backends.some((b) => b.name.toLowerCase() === name.toLowerCase())) {
          pool.backends.push({ name, address, path: s.path });
        }
      }
    }
  }

  private probe(s: Node, name: string): Probe {
    const out: Record<string, unknown> = { name };
    const probe: Probe = { name, path: s.path, out };
    const p = this.object(s, 'properties', true);
    if (!p) return probe;
    this.unmapped(p, KNOWN.probe, 'probe');
    const protocol = this.choice(p, 'protocol', ['Tcp', 'Http', 'Https'], true);
    if (protocol) out.protocol = protocol.toLowerCase();
    const port = this.int(p, 'port', true);
    if (port !== undefined) out.port = port;
    out.intervalSeconds = this.int(p, 'intervalInSeconds') ?? 15; // Azure's default
    const threshold = this.int(p, 'probeThreshold');
    const count = this.int(p, 'numberOfProbes');
    if (threshold !== undefined) {
      out.threshold = threshold;
      if (count !== undefined && count !== threshold) {
        this.warn(this.field(p, 'numberOfProbes')!.path, `numberOfProbes ${count} ignored: probeThreshold ${threshold} is used`);
      }
    } else if (count !== undefined) {
      out.threshold = count;
    }
    const path = this.string(p, 'requestPath');
    if (path !== undefined) {
      if (protocol === 'Tcp') this.warn(this.field(p, 'requestPath')!.path, 'ignored: a Tcp probe has no request path');
      else out.path = path;
    }
    const nhb = this.choice(p, 'noHealthyBackendsBehavior', ['AllProbedDown', 'AllProbedUp']);
    if (nhb) probe.noHealthyBackends = nhb === 'AllProbedUp' ? 'failOpen' : 'drop';
    return probe;
  }

  private rule(lb: LoadBalancer, item: Node, prefix: string, feByKey: Map<string, Frontend>, poolByKey: Map<string, Pool>,
    probeByKey: Map<string, Probe>): Record<string, unknown> | undefined {
    const s = this.shallow(item);
    if (!s) return undefined;
    const name = this.string(s, 'name', true);
    if (name === undefined) return undefined;
    this.unmapped(s, KNOWN.child, 'load-balancing rule');
    const p = this.object(s, 'properties', true);
    if (!p) return undefined;
    this.unmapped(p, KNOWN.rule, 'load-balancing rule');
    const before = this.errors.length;

    const resolve = <T extends { name: string }>(r: { ref: ResourceRef; id: string; path: string } | undefined, type: string,
      map: Map<string, T>, what: string): T | undefined => {
      if (!r) return undefined;
      const found = map.get(refKey(r.ref));
      if (!found) {
        const t = `${r.ref.namespace}/${r.ref.types.join('/')}`;
        if (t.toLowerCase() !== `microsoft.network/loadbalancers/${type}`.toLowerCase()) {
          this.error(r.path, `expected a reference to a ${what}, got one to a ${t}`);
        } else {
          this.error(r.path, `no ${what} "${r.ref.names[1]}" in load balancer "${r.ref.names[0]}" of the template`);
        }
      }
      return found;
    };
    const fe = resolve(this.ref(p, 'frontendIPConfiguration', true), 'frontendIPConfigurations', feByKey, 'frontend IP configuration');
    let poolRef = this.ref(p, 'backendAddressPool');
    const many = this.items(p, 'backendAddressPools');
    if (many.length > 0) {
      // (Gateway load balancers list several pools; haports rules have one.)
      if (!poolRef) poolRef = this.refOf(many[0]);
      if (many.length > 1) {
        this.warn(this.field(p, 'backendAddressPools')!.path,
          `rule "${prefix + name}" uses only pool "${poolRef?.ref.names[1] ?? '?'}"; the other backendAddressPools are not imported`);
      }
    } else if (!poolRef) {
      this.error(join(p.path, 'backendAddressPool'), `required: rule "${prefix + name}" needs a backend pool`);
    }
    const pool = resolve(poolRef, 'backendAddressPools', poolByKey, 'backend pool');
    const probe = this.field(p, 'probe') ? resolve(this.ref(p, 'probe'), 'probes', probeByKey, 'probe') : undefined;
    const protocol = this.choice(p, 'protocol', ['Tcp', 'Udp', 'All'], true);
    const frontendPort = this.int(p, 'frontendPort', true);
    const backendPort = this.int(p, 'backendPort', true);
    const floatingIp = this.bool(p, 'enableFloatingIP') ?? false;
    const dist = this.choice(p, 'loadDistribution', ['Default', 'SourceIP', 'SourceIPProtocol']) ?? 'Default';
    const idle = this.int(p, 'idleTimeoutInMinutes') ?? 4; // Azure's default
    const tcpReset = this.bool(p, 'enableTcpReset') ?? false;
    if (this.errors.length > before || !fe || !pool || !protocol) return undefined;

    const haPorts = protocol === 'All' && frontendPort === 0 && backendPort === 0;
    if (haPorts && fe.isPublic) {
      this.warn(s.path, `Azure allows HA-ports rules only on internal frontends; frontend "${fe.name}" is public`);
    }
    if (haPorts && lb.sku !== undefined && lb.sku.toLowerCase() !== 'standard') {
      this.warn(s.path, `Azure offers HA-ports rules only on Standard load balancers; "${lb.name}" is ${lb.sku}`);
    }
    const rule: Record<string, unknown> = {
      name: prefix + name,
      frontend: fe.name,
      backendPool: pool.name,
      protocol: protocol.toLowerCase(),
      frontendPort,
      backendPort,
      floatingIp,
      loadDistribution: dist === 'Default' ? 'default' : dist === 'SourceIP' ? 'sourceIP' : 'sourceIPProtocol',
      idleTimeoutMinutes: idle,
      enableTcpReset: tcpReset,
    };
    if (probe) {
      rule.probe = probe.name;
      if (probe.noHealthyBackends) rule.noHealthyBackends = probe.noHealthyBackends;
    }
    return rule;
  }
}

/**
 * Evaluates one template string ("[concat('a', parameters('x'))]") against `template`'s
 * parameters and variables; throws an Error whose message is `path: reason`.
 */
export function evaluateTemplateString(s: string, template: Record<string, unknown> = {}, opts: ImportOptions = {}): unknown {
  const set = new Map(Object.entries(opts.set ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  const ev = new Evaluator(template, '', [readParameterValues(opts.parameters, '--parameters')], set);
  try {
    return ev.evalString(s, '$');
  } catch (e) {
    if (e instanceof Fail) throw new Error(`${e.origin ?? '$'}: ${e.reason}${e.hint ? `; ${e.hint}` : ''}`);
    throw e;
  }
}

/** Turns an ARM template (or deployment, or resource list) into a haports configuration. */
export function importArm(template: unknown, opts: ImportOptions = {}): ImportResult {
  const im = new Importer();
  const config = im.run(template, opts);
  return { config: im.errors.length === 0 ? config : null, errors: im.errors, warnings: im.warnings, origins: im.origins };
}

// ---- 3. The command ---------------------------------------------------------------------------

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
