/**
 * Fetching URLs that come from search results (images, pages) without letting a result make this
 * worker call into its own network: a guard against server-side request forgery.
 *
 * - Only http(s). The host may not be, or resolve to, a loopback, private, link-local (this
 *   includes the cloud metadata address 169.254.169.254), unique-local, multicast, reserved or
 *   unspecified address, unless the config allows it by host name or CIDR range.
 * - The check runs on the addresses the socket actually connects to (a `lookup` hook on the
 *   request), so a name that resolves to a public address when checked and to a private one when
 *   connecting (DNS rebinding) is still refused. IP literals are checked before any socket opens.
 * - Redirects are followed by hand, each hop checked again, at most `maxRedirects`.
 * - Bodies are capped at `maxBytes` (declared length and bytes read), the whole fetch at
 *   `timeoutMs`, and the content type must match one of the accepted prefixes.
 *
 * Written on node:http(s) rather than fetch because the global fetch offers no per-connection
 * address hook; the address classification itself is ipaddr.js's.
 */
import { ErrorTypes } from '../../core/contracts/errors.js';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { BadInputError, SegflowError, TransientError } from '../errors.js';

/** A URL refused by the guard: never retryable (the same URL will be refused again). */
export class BlockedUrlError extends SegflowError {
  constructor(url: string, reason: string) {
    super(ErrorTypes.blockedUrl, `refusing to fetch ${url}: ${reason}`, {
      retryable: false,
      details: { url, reason },
    });
  }
}

export interface GuardOptions {
  /**
   * Host names or CIDR ranges allowed even though they are not public (`"127.0.0.1/32"`,
   * `"::1/128"`, `"intranet.example"`). @default []
   */
  allow?: readonly string[];
  /** @default 10485760 */
  maxBytes?: number;
  /** Whole fetch, redirects included. @default 20000 */
  timeoutMs?: number;
  /** @default 3 */
  maxRedirects?: number;
  /** Accepted content-type prefixes (`"image/"`, `"text/html"`); empty accepts any. @default [] */
  accept?: readonly string[];
  /** Extra request headers. */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface GuardedResponse {
  /** The URL that answered, after redirects. */
  url: string;
  status: number;
  contentType: string;
  body: Buffer;
}

type Parsed = ipaddr.IPv4 | ipaddr.IPv6;

function normalise(addr: Parsed): Parsed {
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (addr as ipaddr.IPv6).toIPv4Address();
  }
  return addr;
}

/** The allow list, compiled: CIDR ranges and lower-case host names. */
export class AllowList {
  private readonly cidrs: [Parsed, number][] = [];
  private readonly hosts = new Set<string>();

  constructor(entries: readonly string[] = []) {
    for (const raw of entries) {
      const entry = raw.trim().toLowerCase();
      if (entry.includes('/')) {
        try {
          this.cidrs.push(ipaddr.parseCIDR(entry));
        } catch {
          throw new BadInputError(
            `search.fetch.allow entry ${JSON.stringify(raw)} is not a valid CIDR range (e.g. "127.0.0.1/32")`,
          );
        }
      } else if (ipaddr.isValid(entry)) {
        const a = normalise(ipaddr.parse(entry));
        this.cidrs.push([a, a.kind() === 'ipv4' ? 32 : 128]);
      } else {
        this.hosts.add(entry.replace(/^\[|\]$/g, ''));
      }
    }
  }

  allowsHost(host: string): boolean {
    return this.hosts.has(host.toLowerCase());
  }

  allowsAddress(addr: Parsed): boolean {
    return this.cidrs.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits));
  }
}

/** Why an address may not be fetched, or undefined when it is an ordinary public unicast one. */
export function blockedAddressReason(address: string, allow: AllowList): string | undefined {
  let parsed: Parsed;
  try {
    parsed = normalise(ipaddr.parse(address));
  } catch {
    return `"${address}" is not an IP address`;
  }
  if (allow.allowsAddress(parsed)) return undefined;
  const range = parsed.range();
  if (range === 'unicast') return undefined;
  const shown = parsed.kind() === 'ipv6' ? `[${parsed.toString()}]` : parsed.toString();
  const what = parsed.toString() === '169.254.169.254' ? 'the cloud metadata address' : `a ${range} address`;
  return `${shown} is ${what} (allow it in search.fetch.allow to fetch it anyway)`;
}

function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
}

/**
 * Checks a URL before any connection: scheme, credentials, IP literals and the names that always
 * mean this machine. Names that need DNS are checked again at connect time.
 */
export function checkUrl(raw: string, allow: AllowList): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BlockedUrlError(raw, 'not a valid absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BlockedUrlError(raw, `scheme ${url.protocol} is not http or https`);
  }
  if (url.username || url.password) throw new BlockedUrlError(raw, 'URLs with credentials are not fetched');
  const host = hostOf(url);
  if (allow.allowsHost(host)) return url;
  if (ipaddr.isValid(host)) {
    const reason = blockedAddressReason(host, allow);
    if (reason) throw new BlockedUrlError(raw, reason);
  } else if (host === 'localhost' || host.endsWith('.localhost')) {
    // Resolved like loopback by every resolver that matters (RFC 6761); refuse without asking DNS.
    throw new BlockedUrlError(
      raw,
      `${host} is a loopback name (allow it in search.fetch.allow to fetch it anyway)`,
    );
  }
  return url;
}

/** A dns.lookup that fails the connection when any resolved address is not allowed. */
function guardedLookup(allow: AllowList, host: string, url: string): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      if (!allow.allowsHost(host)) {
        for (const a of addresses) {
          const reason = blockedAddressReason(a.address, allow);
          if (reason) {
            return callback(new BlockedUrlError(url, `${hostname} resolves to ${reason}`), '', 0);
          }
        }
      }
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      const first = addresses[0];
      if (!first) return callback(new Error(`${hostname} resolved to no address`), '', 0);
      callback(null, first.address, first.family);
    });
  };
}

function requestOnce(
  url: URL,
  allow: AllowList,
  opts: Required<Pick<GuardOptions, 'maxBytes'>> & { headers: Record<string, string>; signal: AbortSignal },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(
      url,
      {
        method: 'GET',
        headers: { 'user-agent': 'segflow/0.1', accept: '*/*', ...opts.headers },
        lookup: guardedLookup(allow, hostOf(url), url.toString()),
        signal: opts.signal,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) {
          res.resume();
          resolve({ status, headers: res.headers, body: Buffer.alloc(0) });
          return;
        }
        const declared = Number(res.headers['content-length'] ?? NaN);
        if (Number.isFinite(declared) && declared > opts.maxBytes) {
          res.destroy();
          reject(
            new BadInputError(`${url.toString()} is ${declared} bytes, over the limit of ${opts.maxBytes}`, {
              url: url.toString(),
            }),
          );
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > opts.maxBytes) {
            res.destroy();
            reject(
              new BadInputError(`${url.toString()} sent more than ${opts.maxBytes} bytes; stopped reading`, {
                url: url.toString(),
              }),
            );
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve({ status, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** GET a URL from a search result through the request-forgery guard. */
export async function guardedFetch(rawUrl: string, options: GuardOptions = {}): Promise<GuardedResponse> {
  const allow = new AllowList(options.allow ?? []);
  const maxBytes = options.maxBytes ?? 10 * 1024 * 1024;
  const timeoutMs = options.timeoutMs ?? 20_000;
  const maxRedirects = options.maxRedirects ?? 3;
  const accept = options.accept ?? [];
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;

  let url = checkUrl(rawUrl, allow);
  for (let hop = 0; ; hop++) {
    let res;
    try {
      res = await requestOnce(url, allow, { maxBytes, headers: options.headers ?? {}, signal });
    } catch (err) {
      if (err instanceof SegflowError) throw err;
      if (options.signal?.aborted) throw options.signal.reason ?? err;
      if (timeout.aborted) {
        throw new TransientError(`fetching ${url.toString()} took longer than ${timeoutMs} ms`, {
          url: url.toString(),
        });
      }
      throw new TransientError(
        `fetching ${url.toString()} failed: ${(err as Error).message}`,
        { url: url.toString() },
        err,
      );
    }
    if (res.status >= 300 && res.status < 400) {
      const location = res.headers.location;
      if (!location)
        throw new BadInputError(`${url.toString()} answered ${res.status} without a Location header`);
      if (hop >= maxRedirects) {
        throw new BadInputError(`${rawUrl} redirected more than ${maxRedirects} times`, { url: rawUrl });
      }
      url = checkUrl(new URL(location, url).toString(), allow);
      continue;
    }
    if (res.status === 429 || res.status >= 500) {
      throw new TransientError(`${url.toString()} answered HTTP ${res.status}`, {
        url: url.toString(),
        status: res.status,
      });
    }
    if (res.status < 200 || res.status >= 300) {
      throw new BadInputError(`${url.toString()} answered HTTP ${res.status}`, {
        url: url.toString(),
        status: res.status,
      });
    }
    const contentType = String(res.headers['content-type'] ?? '').toLowerCase();
    if (accept.length > 0 && !accept.some((p) => contentType.startsWith(p))) {
      throw new BadInputError(
        `${url.toString()} has content type ${JSON.stringify(contentType || '(none)')}, expected one of ${accept.join(', ')}`,
        { url: url.toString(), contentType },
      );
    }
    return { url: url.toString(), status: res.status, contentType, body: res.body };
  }
}
