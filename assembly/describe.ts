// describe(): the running configuration as the core read it, as JSON, for hosts. Every
// default is applied, every reference resolved to an index, addresses are in canonical
// form, and the sections the core does not read (a pump's "pump", the Envoy filter's
// "filter") are handed back as given, so that no host reads the raw configuration text
// or re-derives the core's numbering. docs/abi.md "describe()" shows the shape.

import { BACKEND_DRAINING } from "./consts";
import { formatAddress } from "./addr";
import { jsonString, stringifyJson } from "./json";
import {
  ADMIN_STATES, ConfigModel, DISTRIBUTION_VALUES, DISTRIBUTIONS, NO_HEALTHY, NO_HEALTHY_VALUES, PERSIST_VALUES,
  PERSISTS, PROTOCOL_VALUES, PROTOCOLS,
} from "./config";
import { Plan } from "./rules";

/** Compact JSON, written in order: open/close containers, key() before each member's value. */
class Writer {
  parts: Array<string> = new Array<string>();
  /** Per open container: whether it holds a value already (the next one needs a comma). */
  filled: Array<bool> = new Array<bool>();
  /** A key was written: the next value is its member's, without a comma of its own. */
  afterKey: bool = false;

  private sep(): void {
    if (this.afterKey) {
      this.afterKey = false;
      return;
    }
    const n = this.filled.length;
    if (n == 0) return;
    if (this.filled[n - 1]) this.parts.push(",");
    this.filled[n - 1] = true;
  }
  key(k: string): Writer {
    this.sep();
    this.parts.push(jsonString(k) + ":");
    this.afterKey = true;
    return this;
  }
  private value(text: string): Writer {
    this.sep();
    this.parts.push(text);
    return this;
  }
  str(s: string): Writer { return this.value(jsonString(s)); }
  int(n: i64): Writer { return this.value(n.toString()); }
  num(x: f64): Writer { return this.value(x == Math.floor(x) && Math.abs(x) < 1e15 ? (<i64>x).toString() : x.toString()); }
  bool(b: bool): Writer { return this.value(b ? "true" : "false"); }
  nul(): Writer { return this.value("null"); }
  raw(json: string): Writer { return this.value(json); }
  open(bracket: string): Writer {
    this.value(bracket);
    this.filled.push(false);
    return this;
  }
  close(bracket: string): Writer {
    this.filled.pop();
    this.parts.push(bracket);
    return this;
  }
  text(): string { return this.parts.join(""); }
}

function nameOf(names: Array<string>, values: StaticArray<u8>, v: u8): string {
  for (let i = 0; i < values.length; i++) if (values[i] == v) return names[i];
  return "";
}

/** The JSON text of describe() for a model the core accepted and the plan compiled from it. */
export function describe(model: ConfigModel, plan: Plan): string {
  const w = new Writer();
  w.open("{");
  w.key("hashKeyGiven").bool(model.hashKeyGiven);
  w.key("flowTable").open("{").key("capacity").int(model.flowCapacity).close("}");

  w.key("frontends").open("[");
  for (let i = 0; i < model.frontends.length; i++) {
    const f = model.frontends[i];
    w.open("{").key("index").int(i).key("name").str(f.name).key("address").str(formatAddress(f.address))
      .key("family").int(f.address.family).close("}");
  }
  w.close("]");

  w.key("backendPools").open("[");
  let b = 0;
  for (let p = 0; p < model.pools.length; p++) {
    const pool = model.pools[p];
    w.open("{").key("index").int(p).key("name").str(pool.name).key("maglevTableSize").int(pool.m)
      .key("drainPeriodSeconds").int(pool.drainSeconds)
      .key("handoverSeconds").int(pool.handoverSeconds).key("backends").open("[");
    for (let j = 0; j < pool.backends.length; j++) w.int(b + j);
    w.close("]").close("}");
    b += pool.backends.length;
  }
  w.close("]");

  w.key("backends").open("[");
  b = 0;
  for (let p = 0; p < model.pools.length; p++) {
    const pool = model.pools[p];
    for (let j = 0; j < pool.backends.length; j++, b++) {
      const be = pool.backends[j];
      w.open("{").key("index").int(b).key("name").str(be.name).key("pool").int(p)
        .key("address").str(formatAddress(be.address)).key("family").int(be.address.family)
        .key("weight").int(be.weight).key("adminState").str(ADMIN_STATES[be.admin == BACKEND_DRAINING ? 1 : 0])
        .key("probeTargets").open("[");
      const targets = plan.backendTargets[b];
      for (let k = 0; k < targets.length; k++) w.int(targets[k]);
      w.close("]").close("}");
    }
  }
  w.close("]");

  w.key("probes").open("[");
  for (let i = 0; i < model.probes.length; i++) {
    const p = model.probes[i];
    w.open("{").key("index").int(i).key("name").str(p.name).key("protocol").str(p.protocol)
      .key("port").int(p.port).key("path").str(p.path).key("intervalSeconds").int(p.intervalSeconds)
      .key("timeoutSeconds").int(p.timeoutSeconds).key("threshold").int(p.threshold).close("}");
  }
  w.close("]");

  w.key("probeTargets").open("[");
  for (let t = 0; t < plan.targetProbe.length; t++) {
    w.open("{").key("index").int(t).key("probe").int(plan.targetProbe[t]).key("address").str(plan.targetAddress[t])
      .key("family").int(plan.targetFamily[t]).key("backends").open("[");
    const backends = plan.targetBackends[t];
    for (let k = 0; k < backends.length; k++) w.int(backends[k]);
    w.close("]").close("}");
  }
  w.close("]");

  w.key("health").open("{").key("damping");
  const d = model.damping;
  if (!d.enabled) w.bool(false);
  else {
    w.open("{").key("halfLifeSeconds").num(d.halfLifeSeconds).key("suppressPenalty").num(d.suppressPenalty)
      .key("reusePenalty").num(d.reusePenalty).key("maxHoldSeconds").num(d.maxHoldSeconds).close("}");
  }
  w.close("}");

  w.key("rules").open("[");
  for (let i = 0; i < model.rules.length; i++) {
    const r = model.rules[i];
    w.open("{").key("index").int(i).key("name").str(r.name)
      .key("frontend").int(r.frontendIndex).key("backendPool").int(r.poolIndex);
    w.key("probe");
    if (r.probeIndex >= 0) w.int(r.probeIndex);
    else w.nul();
    w.key("protocol").str(nameOf(PROTOCOLS, PROTOCOL_VALUES, r.protocol))
      .key("frontendPort").int(r.frontendPort).key("backendPort").int(r.backendPort)
      .key("floatingIp").bool(r.floating)
      .key("loadDistribution").str(nameOf(DISTRIBUTIONS, DISTRIBUTION_VALUES, r.distribution))
      .key("symmetric").bool(r.symmetric).key("idleTimeoutMinutes").int(r.idleMinutes)
      .key("enableTcpReset").bool(r.tcpReset)
      .key("persistOnUnhealthy").str(nameOf(PERSISTS, PERSIST_VALUES, r.persist))
      .key("noHealthyBackends").str(nameOf(NO_HEALTHY, NO_HEALTHY_VALUES, r.noHealthy))
      .close("}");
  }
  w.close("]");

  w.key("hostSections").open("{");
  for (let i = 0; i < model.hostSectionNames.length; i++) {
    w.key(model.hostSectionNames[i]).raw(stringifyJson(model.hostSections[i]));
  }
  w.close("}");
  w.close("}");
  return w.text();
}
