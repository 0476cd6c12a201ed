// The mapping of `haports import-arm` (docs/design.md "The configuration"): an Azure Resource Manager template (or an
// exported deployment, or a list of resources) → a haports configuration. Load balancers
// (frontendIPConfigurations, backendAddressPools, probes, loadBalancingRules) and the network
// interfaces that join their pools → frontends, backendPools, probes, rules. Values known only
// at deployment (dynamic private addresses) come from `--set frontend.NAME=IP` /
// `--set backend.NAME=IP`. Template expressions are evaluated by host/arm/expressions.ts.
// Azure exports are read as they are: children declared as resources of their own
// (`Microsoft.Network/loadBalancers/backendAddressPools` "LB/POOL") merge with the load
// balancer's own by name; the Dynamic addresses they carry are used, with a warning.
//
// Errors, warnings and info notes are issues {path, message}, the path into the input file
// (`resources[2].properties.loadBalancingRules[0].properties.protocol`); an error about a
// frontend, pool, backend, probe or rule names it.

import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import {
  Evaluator, Fail, REFERENCE_VIEW, at, canonicalId, isObject, join, keyOf, parseResourceId, readParameterValues, refKey,
  typeName, within,
} from './expressions.js';
import type { GivenParameter, ResourceRef, Value } from './expressions.js';

/** A fresh secret hashKey (docs/flowtable.md): the imported configuration carries it,
 *  to be deployed as is on every instance. */
export function newHashKey(): string {
  return `0x${randomBytes(16).toString('hex')}`;
}

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

/** An error, warning or note: where in the input (`resources[3].properties.probes[0]`,
 *  `--set NAME`, `$` for the whole input) and what, naming the object concerned. */
export interface Issue {
  path: string;
  message: string;
  /** For the configuration's own checks: the path in the configuration (`rules[1].frontend`). */
  configPath?: string;
}

export interface ImportResult {
  config: object | null;
  /** The issues as `path: message` lines. */
  errors: string[];
  warnings: string[];
  /** Notes that are neither errors nor warnings: repeated declarations merged, say. */
  info: string[];
  /** The same, as objects. */
  issues: { errors: Issue[]; warnings: Issue[]; info: Issue[] };
  /** Where each configuration object came from: "rules[1]" → "resources[2].properties.loadBalancingRules[1]". */
  origins: Record<string, string>;
}

interface Frontend { name: string; address?: string; path: string; isPublic: boolean }
interface Backend { name: string; address?: string; adminState?: string; path: string; nic?: boolean }
interface Pool { name: string; path: string; backends: Backend[]; drainPeriodSeconds?: number; joined: number }
interface Probe { name: string; path: string; out: Record<string, unknown>; noHealthyBackends?: string }
interface LoadBalancer { name: string; path: string; node: Node; sku?: string }
/** A pool member known by the id of a network interface IP configuration. */
interface NicRef { pool: Pool; nic: string; ipconfig: string; path: string }
/** A loadBalancerBackendAddresses entry with no address: in an export, the echo of a
 *  network interface's membership (the interface joins the pool itself). */
interface BareEntry { pool: Pool; name: string; path: string; addressPath: string; empty: boolean }
/** A load balancer child declared as a resource of its own, as exports write pools:
 *  `Microsoft.Network/loadBalancers/backendAddressPools` named "LB/POOL". */
interface ChildResource { lb: string; type: string; name: string; node: Node }
/** An `{"id": …}` of the input: the reference parsed, the id as written, where it is. */
interface IdRef { ref: ResourceRef; id: string; path: string }

const LB_TYPE = 'microsoft.network/loadbalancers';
const NIC_TYPE = 'microsoft.network/networkinterfaces';
const MAPPED_CHILDREN: Record<string, string> = {
  frontendipconfigurations: 'frontendIPConfigurations',
  backendaddresspools: 'backendAddressPools',
  probes: 'probes',
  loadbalancingrules: 'loadBalancingRules',
};
/** What errors call each kind of child. */
const CHILD_KIND: Record<string, string> = {
  frontendIPConfigurations: 'frontend',
  backendAddressPools: 'backend pool',
  probes: 'probe',
  loadBalancingRules: 'rule',
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

/** The reference key (as refKey makes it) of child `name`, of type `type`, of load balancer `lb`. */
function childKey(lb: string, type: string, name: string): string {
  return `microsoft.network/loadbalancers/${type}|${lb}/${name}`.toLowerCase();
}

/** A child of load balancer `lb` as reference() shows it: its name and id. */
function childView(lb: string, type: string, name: string): Value {
  return { name, id: canonicalId('Microsoft.Network', ['loadBalancers', type], [lb, name]) };
}

/** A name for loose comparison: lower case, letters and digits only. */
function loose(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** Has `pool` a backend named `name` (ignoring case)? */
function hasBackend(pool: Pool, name: string): boolean {
  return pool.backends.some((b) => b.name.toLowerCase() === name.toLowerCase());
}

/** `path: message`, as the text output prints an issue. */
export function formatIssue(i: Issue): string {
  return `${i.path}: ${i.message}`;
}

/** The object an error is about (`rule "ha"`), to name it in errors that do not already. */
interface Subject { kind: string; name: string; of?: string }

/** `message` naming `subject` (`… (rule "ha")`, before any `; hint`) unless it already does. */
function naming(message: string, subject: Subject | undefined): string {
  if (!subject || message.includes(`"${subject.name}"`)) return message;
  const tag = ` (${subject.kind} "${subject.name}"${subject.of ? ` of ${subject.of}` : ''})`;
  const semi = message.indexOf('; ');
  return semi < 0 ? message + tag : message.slice(0, semi) + tag + message.slice(semi);
}

class Importer {
  errors: Issue[] = [];
  warnings: Issue[] = [];
  info: Issue[] = [];
  origins: Record<string, string> = {};
  private seen = new Set<string>();
  /** What is being read, while it is (errors name it). */
  private subject?: Subject;
  private ev!: Evaluator;
  private setFrontends = new Map<string, { value: string; used: boolean }>();
  private setBackends = new Map<string, { value: string; used: boolean }>();
  private bare: BareEntry[] = [];

  error(path: string, reason: string): void {
    const issue = { path: path || '$', message: naming(reason, this.subject) };
    const line = formatIssue(issue);
    if (this.seen.has(line)) return;
    this.seen.add(line);
    this.errors.push(issue);
  }

  warn(path: string, reason: string): void {
    const issue = { path: path || '$', message: reason };
    if (!this.warnings.some((w) => formatIssue(w) === formatIssue(issue))) this.warnings.push(issue);
  }

  note(path: string, message: string): void {
    this.info.push({ path: path || '$', message });
  }

  /** Runs `read` with `subject` as what errors are about. */
  private about<T>(kind: string, name: string, read: () => T, of?: string): T {
    const outer = this.subject;
    this.subject = { kind, name, of };
    try {
      return read();
    } finally {
      this.subject = outer;
    }
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
      // The reason reads `--set NAME: why`.
      const at = e.reason.indexOf(': ');
      this.errors.push(at < 0 ? { path: '--set', message: e.reason } : { path: e.reason.slice(0, at), message: e.reason.slice(at + 2) });
      return undefined;
    }
    const hints = [e.hint, hint && `${hint} instead`].filter((h) => h);
    const sub = this.subject;
    const subject = sub && !e.reason.includes(`"${sub.name}"`) ? `${sub.kind} "${sub.name}"${sub.of ? ` of ${sub.of}` : ''}` : '';
    const why = within(origin, needed) ? (subject ? ` (${subject})` : '') : ` (needed for ${needed}${subject ? ` of ${subject}` : ''})`;
    this.errors.push({ path: origin || '$', message: e.reason + why + (hints.length ? `; ${hints.join('; or ')}` : '') });
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

  /**
   * Field `key` of object node `n` (ARM property names ignore case); undefined when absent
   * (reported when `required`).
   */
  private field(n: Node, key: string, required = false): Node | undefined {
    const raw = isObject(n.raw) ? n.raw : {};
    const k = keyOf(raw, key);
    if (k === undefined || raw[k] === undefined) {
      if (required) this.error(join(n.path, key), 'required');
      return undefined;
    }
    return new Node(raw[k], join(n.path, k), n.evaluated);
  }

  /** An object field, evaluated one level; undefined (reported when `required`) otherwise. */
  private object(n: Node, key: string, required = false): Node | undefined {
    const f = this.field(n, key, required);
    if (!f) return undefined;
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
    const f = this.field(n, key, required);
    if (!f) return undefined;
    const v = this.value(f);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') {
      this.error(f.path, `expected a string, got ${typeName(v)}`);
      return undefined;
    }
    return v;
  }

  private int(n: Node, key: string, required = false): number | undefined {
    const f = this.field(n, key, required);
    if (!f) return undefined;
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
  private ref(n: Node, key: string, required = false): IdRef | undefined {
    const o = this.object(n, key, required);
    return o ? this.refOf(o) : undefined;
  }

  /** An `{"id": "..."}` node, parsed as a resource reference. */
  private refOf(item: Node): IdRef | undefined {
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
    const childResources: ChildResource[] = [];
    for (const r of resources) this.classify(r, lbs, nics, childResources, null);
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
    for (const c of childResources) {
      if (!lbs.some((lb) => lb.name.toLowerCase() === c.lb.toLowerCase())) {
        this.warn(c.node.path, `not imported: ${CHILD_KIND[c.type]} "${c.name}" belongs to load balancer "${c.lb}", which is not in the template`);
      }
    }

    // Children of every load balancer, by reference key → output object.
    const frontends: Frontend[] = [];
    const pools: Pool[] = [];
    const probes: Probe[] = [];
    const feByKey = new Map<string, Frontend>();
    const poolByKey = new Map<string, Pool>();
    const probeByKey = new Map<string, Probe>();
    const nicRefs: NicRef[] = [];
    const ruleNodes: { lb: LoadBalancer; node: Node; name?: string }[] = [];

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
      // Children declared as resources of their own (an export's pools), after the load balancer's own.
      const own = (type: string) => childResources.filter((c) => c.type === type && c.lb.toLowerCase() === lb.name.toLowerCase());

      // frontendIPConfigurations → frontends
      views.frontendIPConfigurations = this.children(lb, prefix, props, 'frontendIPConfigurations', 'frontend IP configuration',
        { list: frontends, config: 'frontends', byKey: feByKey }, (s, name) => this.frontend(s, name), own('frontendIPConfigurations'));

      // backendAddressPools → backendPools (their NIC members come later); a pool declared
      // both ways (as exports write them) is one pool, its members merged by name.
      views.backendAddressPools = this.children(lb, prefix, props, 'backendAddressPools', 'backend pool',
        { list: pools, config: 'backendPools', byKey: poolByKey }, (s, name, into) => this.backendPool(s, name, nicRefs, into),
        own('backendAddressPools'));

      // probes
      views.probes = this.children(lb, prefix, props, 'probes', 'probe',
        { list: probes, config: 'probes', byKey: probeByKey }, (s, name) => this.probe(s, name), own('probes'));

      // loadBalancingRules: resolved once every load balancer's children are known
      views.loadBalancingRules = [];
      for (const item of this.items(props, 'loadBalancingRules')) {
        ruleNodes.push({ lb, node: item });
        const name = isObject(item.raw) && typeof item.raw.name === 'string' && !item.raw.name.startsWith('[') ? item.raw.name : undefined;
        if (name) views.loadBalancingRules.push(childView(lb.name, 'loadBalancingRules', name));
      }
      for (const c of own('loadBalancingRules')) {
        ruleNodes.push({ lb, node: c.node, name: c.name });
        views.loadBalancingRules.push(childView(lb.name, 'loadBalancingRules', c.name));
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
      if (hasBackend(r.pool, name)) continue;
      const set = this.setAddress(this.setBackends, name);
      if (set === undefined) {
        this.error(r.path, `network interface IP configuration "${name}" of pool "${r.pool.name}" is not in the template; `
          + `pass its address with --set backend.${name}=<ip>`);
      } else {
        r.pool.backends.push({ name, address: set, path: r.path, nic: true });
      }
    }
    // Address entries without an address: an export's echo of a network interface member, or an error.
    for (const b of this.bare) {
      if (hasBackend(b.pool, b.name)) continue;
      const nic = b.pool.backends.find((x) => x.nic && loose(b.name).endsWith(loose(x.name)));
      if (nic) {
        this.note(b.path, `backend address "${b.name}" of pool "${b.pool.name}" stands for network interface IP configuration `
          + `"${nic.name}" (an export lists a member network interface this way); imported from the network interface`);
        continue;
      }
      if (b.empty && b.pool.backends.some((x) => x.nic)) {
        // (Named after a network interface renamed since, say.)
        this.note(b.path, `backend address "${b.name}" of pool "${b.pool.name}" has no properties: taken for a member network interface `
          + 'as an export lists them; the pool\'s members are the network interfaces of the template that join it');
        continue;
      }
      this.error(b.addressPath, `backend address "${b.name}" of pool "${b.pool.name}" has no ipAddress`
        + (b.empty ? ' (an export lists a member network interface this way: export the network interface with the load balancer)' : '')
        + `; pass --set backend.${b.name}=<ip>`);
    }

    // loadBalancingRules → rules
    const rules: Record<string, unknown>[] = [];
    const ruleAt = new Map<string, string>();
    for (const { lb, node, name } of ruleNodes) {
      const prefix = prefixed ? `${lb.name}/` : '';
      if (name !== undefined) {
        const at = ruleAt.get((prefix + name).toLowerCase());
        if (at !== undefined) {
          this.note(node.path, `rule "${prefix + name}" is declared both in load balancer "${lb.name}" (${at}) and as a resource of its own; `
            + 'the load balancer\'s declaration is imported');
          continue;
        }
      }
      const rule = this.rule(lb, node, prefix, feByKey, poolByKey, probeByKey, name);
      if (rule) ruleAt.set(String(rule.name).toLowerCase(), node.path);
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
  private classify(r: Node, lbs: LoadBalancer[], nics: Node[], children: ChildResource[], parent: LoadBalancer | null): void {
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
    if (parent && !type.includes('/')) type = `Microsoft.Network/loadBalancers/${type}`;
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
      for (const child of this.items(r, 'resources')) this.classify(child, lbs, nics, children, lb);
    } else if (t.startsWith(LB_TYPE + '/')) {
      const sub = t.slice(LB_TYPE.length + 1);
      if (MAPPED_CHILDREN[sub]) {
        // A child of its own: "LB/NAME" (or "NAME" nested in the load balancer's resources).
        if (this.field(r, 'copy')) {
          this.error(this.field(r, 'copy')!.path, `resource copy loops are not supported; declare each ${type} resource on its own`);
          return;
        }
        const full = this.string(r, 'name', true);
        if (full === undefined) return;
        const parts = full.split('/');
        if (parts.length === 1 && parent) parts.unshift(parent.name);
        if (parts.length !== 2 || !parts[0] || !parts[1]) {
          this.error(join(r.path, 'name'), `expected "LOADBALANCER/NAME" as the name of a ${type} resource, got "${full}"`);
          return;
        }
        if (parent && parts[0].toLowerCase() !== parent.name.toLowerCase()) {
          this.error(join(r.path, 'name'), `${CHILD_KIND[MAPPED_CHILDREN[sub]]} "${parts[1]}" is declared in load balancer "${parent.name}" `
            + `but named for load balancer "${parts[0]}"`);
          return;
        }
        this.unmapped(r, KNOWN.resource, 'resource');
        children.push({ lb: parts[0], type: MAPPED_CHILDREN[sub], name: parts[1], node: r });
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

  /**
   * The named children of load balancer `lb` listed at `props[type]` (frontendIPConfigurations,
   * backendAddressPools, probes; a `kind` each): each read by `read`, appended to `into.list`
   * (the configuration's list `into.config`, for origins) and kept by reference key in
   * `into.byKey`. Returns their names and ids, as reference() of the load balancer shows them.
   */
  private children<T extends { path: string }>(lb: LoadBalancer, prefix: string, props: Node, type: string, kind: string,
    into: { list: T[]; config: string; byKey: Map<string, T> }, read: (s: Node, name: string, into?: T) => T,
    resources: ChildResource[]): Value[] {
    const view: Value[] = [];
    const subject = CHILD_KIND[type];
    const add = (s: Node, name: string) => {
      const child = this.about(subject, prefix + name, () => read(s, prefix + name));
      into.list.push(child);
      this.origins[`${into.config}[${into.list.length - 1}]`] = s.path;
      into.byKey.set(childKey(lb.name, type, name), child);
      view.push(childView(lb.name, type, name));
    };
    for (const item of this.items(props, type)) {
      const s = this.shallow(item);
      if (!s) continue;
      const name = this.string(s, 'name', true);
      if (name === undefined) continue;
      this.unmapped(s, KNOWN.child, kind);
      add(s, name);
    }
    // Declared as resources of their own: new ones added; one the load balancer declares too
    // (exports repeat pools so) merged into it when it is a pool, else read once, from the load balancer.
    for (const c of resources) {
      const known = into.byKey.get(childKey(lb.name, type, c.name));
      if (known === undefined) {
        add(c.node, c.name);
      } else if (type === 'backendAddressPools') {
        this.about(subject, prefix + c.name, () => read(c.node, prefix + c.name, known));
        this.note(c.node.path, `${subject} "${prefix + c.name}" is declared both in load balancer "${lb.name}" (${known.path}) `
          + 'and as a resource of its own; imported once, with the members of both');
      } else {
        this.note(c.node.path, `${subject} "${prefix + c.name}" is declared both in load balancer "${lb.name}" (${known.path}) `
          + 'and as a resource of its own; the load balancer\'s declaration is imported');
      }
    }
    return view;
  }

  /** A backendAddressPool: its addresses, and the NIC IP configurations it names (looked up later). */
  private backendPool(s: Node, name: string, nicRefs: NicRef[], into?: Pool): Pool {
    const pool: Pool = into ?? { name, path: s.path, backends: [], joined: 0 };
    const pp = this.object(s, 'properties');
    if (!pp) return pool;
    this.unmapped(pp, KNOWN.pool, 'backend pool');
    const drain = this.int(pp, 'drainPeriodInSeconds');
    if (drain !== undefined && pool.drainPeriodSeconds === undefined) pool.drainPeriodSeconds = drain;
    for (const entry of this.items(pp, 'loadBalancerBackendAddresses')) this.addressEntry(entry, pool, nicRefs, into !== undefined);
    for (const ipc of this.items(pp, 'backendIPConfigurations')) {
      const r = this.refOf(ipc);
      if (r) this.nicRef(r.ref, r.path, pool, nicRefs);
    }
    return pool;
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
    const address = this.privateAddress(p, `frontend "${name}"`, hint, ' (Azure assigns one at deployment)');
    if (address !== undefined) fe.address = address;
    return fe;
  }

  /**
   * The static private address in the properties `p` of an IP configuration (of `subject`,
   * `frontend "NAME"` say); undefined, reported, when it is dynamic, absent (`absent`: why)
   * or not a string. `hint` says how to give it instead.
   */
  private privateAddress(p: Node, subject: string, hint: string, absent = ''): string | undefined {
    const method = this.choice(p, 'privateIPAllocationMethod', ['Static', 'Dynamic']);
    const addr = this.field(p, 'privateIPAddress');
    if (method === 'Dynamic') {
      // An export (portal, az group export) carries the address Azure assigned: used, with a warning.
      const v = addr ? this.value(addr, hint) : undefined;
      if (typeof v === 'string' && v !== '') {
        this.warn(addr!.path, `${subject} has a dynamic private address: imported as ${v}, its address when the template was exported, `
          + `which Azure may change; make it Static, or ${hint}`);
        return v;
      }
      if (addr && v === undefined) return undefined;
      this.error(this.field(p, 'privateIPAllocationMethod')!.path,
        `${subject} has a dynamic private address, known only after deployment; ${hint}`);
      return undefined;
    }
    if (!addr) {
      this.error(join(p.path, 'privateIPAddress'), `${subject} has no private address${absent}; ${hint}`);
      return undefined;
    }
    const v = this.value(addr, hint);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') {
      this.error(addr.path, `expected an address string, got ${typeName(v)}`);
      return undefined;
    }
    return v;
  }

  /** One loadBalancerBackendAddresses entry: by address, or naming a NIC IP configuration. */
  private addressEntry(entry: Node, pool: Pool, nicRefs: NicRef[], merging: boolean): void {
    pool.joined++;
    const s = this.shallow(entry);
    if (!s) return;
    const name = this.string(s, 'name', true);
    if (name === undefined) return;
    // A pool declared twice (in the load balancer and on its own): each member once.
    const lower = name.toLowerCase();
    if (merging && (hasBackend(pool, name) || this.bare.some((b) => b.pool === pool && b.name.toLowerCase() === lower))) return;
    this.about('backend', name, () => this.addressEntryOf(s, name, pool, nicRefs), `pool "${pool.name}"`);
  }

  private addressEntryOf(s: Node, name: string, pool: Pool, nicRefs: NicRef[]): void {
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
      // Decided once the network interfaces are read: an export lists members so.
      this.bare.push({ pool, name, path: s.path, addressPath: join(p ? p.path : join(s.path, 'properties'), 'ipAddress'),
        empty: !p || (isObject(p.raw) && Object.keys(p.raw).length === 0) });
      return;
    }
    if (!hasBackend(pool, name)) pool.backends.push(backend);
  }

  /** A pool member given by the id of a NIC IP configuration. */
  private nicRef(ref: ResourceRef, path: string, pool: Pool, nicRefs: NicRef[]): void {
    const t = `${ref.namespace}/${ref.types.join('/')}`.toLowerCase();
    if (t !== 'microsoft.network/networkinterfaces/ipconfigurations') {
      this.warn(path, `not imported: a pool member of type ${ref.namespace}/${ref.types.join('/')} (only network interface IP configurations are)`);
      return;
    }
    pool.joined++;
    const [nic, ipconfig] = ref.names;
    const same = (r: NicRef) => r.pool === pool && r.nic.toLowerCase() === nic.toLowerCase() && r.ipconfig.toLowerCase() === ipconfig.toLowerCase();
    if (!nicRefs.some(same)) nicRefs.push({ pool, nic, ipconfig, path });
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
        const pools = joined.map((j) => `"${j.name}"`).join(', ');
        address = this.about('network interface IP configuration', name, () => this.privateAddress(p,
          `network interface IP configuration "${name}" (in pool ${pools})`, `pass --set backend.${name}=<ip>`));
        if (address === undefined) continue;
      }
      for (const pool of joined) {
        if (!hasBackend(pool, name)) {
          pool.backends.push({ name, address, path: s.path, nic: true });
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

  /** A load-balancing rule; `resourceName` when it is a resource of its own (named "LB/NAME"). */
  private rule(lb: LoadBalancer, item: Node, prefix: string, feByKey: Map<string, Frontend>, poolByKey: Map<string, Pool>,
    probeByKey: Map<string, Probe>, resourceName?: string): Record<string, unknown> | undefined {
    const s = this.shallow(item);
    if (!s) return undefined;
    const name = resourceName ?? this.string(s, 'name', true);
    if (name === undefined) return undefined;
    if (resourceName === undefined) this.unmapped(s, KNOWN.child, 'load-balancing rule');
    return this.about('rule', prefix + name, () => this.ruleOf(lb, s, prefix, name, feByKey, poolByKey, probeByKey));
  }

  private ruleOf(lb: LoadBalancer, s: Node, prefix: string, name: string, feByKey: Map<string, Frontend>, poolByKey: Map<string, Pool>,
    probeByKey: Map<string, Probe>): Record<string, unknown> | undefined {
    const p = this.object(s, 'properties', true);
    if (!p) return undefined;
    this.unmapped(p, KNOWN.rule, 'load-balancing rule');
    const before = this.errors.length;

    const resolve = <T extends { name: string }>(r: IdRef | undefined, type: string,
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

/** Turns an ARM template (or deployment, or resource list) into a haports configuration. */
export function importArm(template: unknown, opts: ImportOptions = {}): ImportResult {
  const im = new Importer();
  const config = im.run(template, opts);
  return {
    config: im.errors.length === 0 ? config : null,
    errors: im.errors.map(formatIssue),
    warnings: im.warnings.map(formatIssue),
    info: im.info.map(formatIssue),
    issues: { errors: im.errors, warnings: im.warnings, info: im.info },
    origins: im.origins,
  };
}
