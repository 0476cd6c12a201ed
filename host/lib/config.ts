// TypeScript types of the haports configuration (config.schema.json is the published
// JSON Schema; the core validates everything, including what neither can express).

export type Protocol = 'all' | 'tcp' | 'udp';
export type LoadDistribution = 'default' | 'sourceIPProtocol' | 'sourceIP';
export type PersistOnUnhealthy = 'defaultForProtocol' | 'never' | 'always';
export type NoHealthyBackends = 'drop' | 'failOpen';

export interface Frontend {
  name: string;
  /** IPv4 or IPv6 address text. */
  address: string;
}

export interface Backend {
  name: string;
  address: string;
  /** Integer 0–1000; default 1. 0 takes no new flows. */
  weight?: number;
  /** Default "up". A draining backend takes no new flows and keeps its existing ones. */
  adminState?: 'up' | 'draining';
}

export interface BackendPool {
  name: string;
  /** Maglev table size, prime; default 65537. */
  maglevTableSize?: number;
  /** How long a draining backend keeps its flows (seconds); 0 (default) = until they end. */
  drainPeriodSeconds?: number;
  /** After a backend-set change, mid-stream TCP packets of untracked flows keep the previous table's backend for this long (0 = off; default 60). */
  handoverSeconds?: number;
  backends?: Backend[];
}

export interface Probe {
  name: string;
  protocol?: 'tcp' | 'http' | 'https';
  port: number;
  intervalSeconds?: number;
  threshold?: number;
  /** Default and most: intervalSeconds. */
  timeoutSeconds?: number;
  path?: string;
}

/** Flap damping of probe targets (docs/health.md); `false` turns it off. */
export interface Damping {
  halfLifeSeconds?: number;
  suppressPenalty?: number;
  reusePenalty?: number;
  maxHoldSeconds?: number;
}

export interface Rule {
  name: string;
  frontend: string;
  backendPool: string;
  /** "all" (HA ports) if and only if both ports are 0. */
  protocol?: Protocol;
  frontendPort?: number;
  backendPort?: number;
  floatingIp?: boolean;
  loadDistribution?: LoadDistribution;
  /** Default: true on HA-ports rules, false on others. */
  symmetric?: boolean;
  idleTimeoutMinutes?: number;
  enableTcpReset?: boolean;
  probe?: string;
  persistOnUnhealthy?: PersistOnUnhealthy;
  noHealthyBackends?: NoHealthyBackends;
}

export interface Config {
  /** Secret 128-bit key of the flow hash: "0x" + 32 hex digits, the same on every instance. */
  hashKey?: string;
  /** The older 64-bit form of hashKey ("0x" + up to 16 hex digits, or an integer up to 2^53); not with hashKey. */
  hashSeed?: string | number;
  flowTable?: { capacity?: number };
  frontends?: Frontend[];
  backendPools?: BackendPool[];
  probes?: Probe[];
  rules?: Rule[];
  /** The health policy the core applies to probe results. */
  health?: { damping?: Damping | false };
  /** Hosts may add their own sections (a pump's listeners, say). */
  [section: string]: unknown;
}
