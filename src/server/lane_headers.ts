/**
 * The fast lanes' headers (unary_fast_lane.ts, stream_fast_lane.ts): node:http2's
 * fields read as Connect reads them through web Headers, and a call's request
 * headers, response headers and trailers as web Headers that are filled only when
 * first used as Headers. Most calls never use them so (issue 11's heap profile:
 * three Headers a call were 4.5 % of the leader's allocations at 64 puts in flight).
 *
 * @module
 */

import type * as http2 from "node:http2";

/** A node header's value as Connect reads it through web Headers (repeated: joined by ", "), or null. */
export function headerOf(v: string | string[] | undefined): string | null {
  if (v === undefined) return null;
  return typeof v === "string" ? v : v.join(", ");
}

/**
 * connect-node's nodeHeaderToWebHeader, as `createHandlerContext` makes its
 * Headers (Connect made Headers, then the context a copy of them): every field
 * but the pseudo-headers, appended in the order of the request, when something
 * first reads or changes them as a whole ({@link RequestHeaders}).
 */
export function webHeadersOf(headers: http2.IncomingHttpHeaders): Headers {
  return new RequestHeaders(headers);
}

/** An HTTP field name (RFC 9110's token): what Headers' get and has accept without throwing. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Web Headers whose first fields are put in only when first used as Headers (a
 * subclass's {@link LazyHeaders.fill}): every method of Headers fills them first.
 * Why: the lane made three Headers per call (the request's, the response's and
 * its trailers), 4.5 % of the leader's allocations at 64 puts in flight (issue
 * 11's heap profile, Deno's Headers keep a list of pairs and lowercase every name
 * they take), and most calls use none of them as Headers. Nothing may read them
 * through Deno's internals instead of their methods (only the inspector's view of
 * them would show them empty before their first use).
 */
abstract class LazyHeaders extends Headers {
  /** Puts the first fields in, once (with {@link LazyHeaders.put}); nothing if done. */
  protected abstract fill(): void;

  /** Headers' own append, for {@link LazyHeaders.fill}. */
  protected put(name: string, value: string): void {
    super.append(name, value);
  }

  override get(name: string): string | null {
    this.fill();
    return super.get(name);
  }

  override has(name: string): boolean {
    this.fill();
    return super.has(name);
  }

  override append(name: string, value: string): void {
    this.fill();
    super.append(name, value);
  }

  override set(name: string, value: string): void {
    this.fill();
    super.set(name, value);
  }

  override delete(name: string): void {
    this.fill();
    super.delete(name);
  }

  override getSetCookie(): string[] {
    this.fill();
    return super.getSetCookie();
  }

  override forEach(
    callback: (value: string, key: string, parent: this) => void,
    thisArg?: unknown,
  ): void {
    this.fill();
    super.forEach(callback, thisArg);
  }

  override entries(): ReturnType<Headers["entries"]> {
    this.fill();
    return super.entries();
  }

  override keys(): ReturnType<Headers["keys"]> {
    this.fill();
    return super.keys();
  }

  override values(): ReturnType<Headers["values"]> {
    this.fill();
    return super.values();
  }

  override [Symbol.iterator](): ReturnType<Headers["entries"]> {
    this.fill();
    return super[Symbol.iterator]();
  }
}

/**
 * A call's request headers, filled from node:http2's fields when first used as
 * Headers. Most calls read one field at most (route.ts's forwarding header):
 * `get` and `has` answer a plain field name from node:http2's fields as the
 * filled Headers would (the values of a name joined by ", "; node:http2 lowercases
 * names, and nghttp2 refuses the values Headers would refuse).
 */
class RequestHeaders extends LazyHeaders {
  #fields: http2.IncomingHttpHeaders | undefined;

  constructor(fields: http2.IncomingHttpHeaders) {
    super();
    this.#fields = fields;
  }

  protected fill(): void {
    const fields = this.#fields;
    if (fields === undefined) return;
    this.#fields = undefined;
    for (const k in fields) {
      if (k.charCodeAt(0) === COLON) continue;
      const v = fields[k];
      if (v === undefined) continue;
      if (typeof v === "string") this.put(k, v);
      else if (typeof v === "number") this.put(k, String(v));
      else for (const e of v) this.put(k, e);
    }
  }

  /** The field as the filled Headers' `get` would say it, or undefined to ask them. */
  #unfilled(name: string): string | null | undefined {
    const fields = this.#fields;
    if (fields === undefined || !TOKEN.test(name)) return undefined;
    const v = fields[name.toLowerCase()];
    if (v === undefined) return null;
    if (typeof v === "number") return String(v);
    const joined = typeof v === "string" ? v : v.join(", ");
    // Headers trim HTTP whitespace off each value they take: ask them if there is any.
    return untrimmed(joined) ? undefined : joined;
  }

  override get(name: string): string | null {
    const v = this.#unfilled(name);
    return v !== undefined ? v : super.get(name);
  }

  override has(name: string): boolean {
    const v = this.#unfilled(name);
    return v !== undefined ? v !== null : super.has(name);
  }
}

/** Whether a value starts or ends with HTTP whitespace (tab, LF, CR, space). */
function untrimmed(v: string): boolean {
  if (v.length === 0) return false;
  const a = v.charCodeAt(0);
  const z = v.charCodeAt(v.length - 1);
  return a === 9 || a === 10 || a === 13 || a === 32 || z === 9 || z === 10 || z === 13 ||
    z === 32;
}

const COLON = 0x3a;

/**
 * A call's response headers or trailers, made with their first fields (one or
 * two, in the order Headers would list them), put in only when they are first
 * used as Headers ({@link LazyHeaders}), and that know whether anything changed
 * them since: most calls' are neither used nor changed (an OK answer), and
 * {@link nodeHeadersOf} then writes those fields without iterating the Headers
 * (Deno's iteration sorts and copies them: a KB of garbage a call, issue 11's
 * heap profile). Anything may still read or change them as Headers.
 */
export class ResponseHeaders extends LazyHeaders {
  #changed = false;
  #filled = false;
  readonly #name: string;
  readonly #value: string;
  readonly #name2: string | undefined;
  readonly #value2: string | undefined;

  constructor(name: string, value: string, name2?: string, value2?: string) {
    super();
    if (name2 !== undefined && value2 !== undefined && !(name < name2)) {
      throw new Error(`invariant: response fields in Headers' order (${name} < ${name2})`);
    }
    this.#name = name;
    this.#value = value;
    this.#name2 = name2;
    this.#value2 = value2;
  }

  protected fill(): void {
    if (this.#filled) return;
    this.#filled = true;
    this.put(this.#name, this.#value);
    if (this.#name2 !== undefined && this.#value2 !== undefined) {
      this.put(this.#name2, this.#value2);
    }
  }

  /** connect-node's webHeaderToNodeHeaders of it if nothing changed it: its first fields. */
  unchangedAsNode(): Record<string, string> | undefined {
    if (this.#changed) return undefined;
    if (this.#name2 === undefined || this.#value2 === undefined) {
      return { [this.#name]: this.#value };
    }
    return { [this.#name]: this.#value, [this.#name2]: this.#value2 };
  }

  override append(name: string, value: string): void {
    this.#changed = true;
    super.append(name, value);
  }

  override set(name: string, value: string): void {
    this.#changed = true;
    super.set(name, value);
  }

  override delete(name: string): void {
    this.#changed = true;
    super.delete(name);
  }
}

/** connect-node's webHeaderToNodeHeaders. */
export function nodeHeadersOf(headers: Headers): Record<string, string | string[]> {
  const unchanged = headers instanceof ResponseHeaders ? headers.unchangedAsNode() : undefined;
  if (unchanged !== undefined) return unchanged;
  const o: Record<string, string | string[]> = Object.create(null);
  headers.forEach((value, key) => {
    const existing = o[key];
    if (Array.isArray(existing)) existing.push(value);
    else if (existing === undefined) o[key] = value;
    else o[key] = [existing, value];
  });
  return o;
}

/** Connect's copyHeaders: `to` becomes `from` (unless they are the same object). */
export function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  const keys: string[] = [];
  to.forEach((_, key) => void keys.push(key));
  for (const key of keys) to.delete(key);
  from.forEach((value, key) => to.set(key, value));
}
