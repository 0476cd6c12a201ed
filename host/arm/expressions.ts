// ARM template expressions, for `haports import-arm` (host/arm/importer.ts): a tokenizer and
// parser for the "[...]" language and an evaluator for the functions such templates use
// (parameters, variables, resourceId, concat, format, toLower, …). Evaluation is lazy: only
// the values the import reads are evaluated, so a template whose VMs call uniqueString() or
// reference() still imports, and an unsupported function is reported where it is, with the
// property that needed it. Also the helpers the importer shares: paths into the input
// (`resources[2].properties.protocol`), ARM-style property lookup, resource ids.

import type { ImportOptions } from './importer.js';

/** A failure while evaluating; `origin` is the path of the text that failed, once known. */
export class Fail extends Error {
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

export type Value = null | boolean | number | string | Value[] | { [k: string]: Value };

/** Is `s` an expression (its text without the brackets) or a literal (its value)? */
function splitTemplateString(s: string): { expr: string } | { literal: string } {
  if (s.startsWith('[[')) return { literal: s.slice(1) };
  if (s.startsWith('[') && s.endsWith(']')) return { expr: s.slice(1, -1) };
  return { literal: s };
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Property of `obj` named `key`, ARM-style: exact match first, then ignoring case. */
export function keyOf(obj: Record<string, unknown>, key: string): string | undefined {
  if (Object.prototype.hasOwnProperty.call(obj, key)) return key;
  const lower = key.toLowerCase();
  return Object.keys(obj).find((k) => k.toLowerCase() === lower);
}

export function typeName(v: unknown): string {
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
export function join(path: string, key: string): string {
  const k = PATH_WORD.test(key) ? key : `[${JSON.stringify(key)}]`;
  if (path === '') return k;
  return k.startsWith('[') ? path + k : `${path}.${k}`;
}

/** Is `path` inside `outer` (or the same)? */
export function within(path: string, outer: string): boolean {
  return outer === '' || path === outer || path.startsWith(outer + '.') || path.startsWith(outer + '[');
}
export const at = (path: string, i: number) => `${path}[${i}]`;

/** A resource id's provider part, parsed: Microsoft.Network/loadBalancers/lb1/probes/p1. */
export interface ResourceRef {
  namespace: string;
  types: string[];
  names: string[];
}

/** The canonical id resourceId() produces (subscription and resource group are placeholders). */
export function canonicalId(namespace: string, types: string[], names: string[], sub = '{sub}', rg = '{rg}'): string {
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
export function refKey(ref: ResourceRef): string {
  return `${ref.namespace}/${ref.types.join('/')}|${ref.names.join('/')}`.toLowerCase();
}

/** The parameter values a user gives: a parameters file, or a plain {name: value} map. */
export interface GivenParameter { value?: unknown; keyVault?: boolean }

/**
 * Reads parameter values: a parameters file ({"parameters": {name: {"value": v}}}), the
 * {name: {"value": v}} map of a deployment (`entries`), or a plain {name: v} map.
 */
export function readParameterValues(input: unknown, what: string, entries = false): Map<string, GivenParameter> {
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
export const REFERENCE_VIEW = Symbol('reference view');

export class Evaluator {
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
