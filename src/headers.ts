/**
 * Reading and writing request headers without asking which copy of axios made them. An app's
 * instance may come from axios's other build (CJS next to ESM) or from a nested second version;
 * its `AxiosHeaders` is then another class than ours, so nothing here tests class identity: a
 * headers object is anything with `get` and `set`, as axios itself treats it, or a plain object.
 */

/** The part of `AxiosHeaders` (any copy, any version in the peer range) that is used here. */
interface HeaderBag {
  get(name: string): unknown;
  set(name: string, value: unknown): unknown;
  has?(name: string): boolean;
  delete?(name: string): boolean;
  toJSON?(): Record<string, unknown>;
}

function isHeaderBag(headers: unknown): headers is HeaderBag {
  return (
    headers !== null &&
    typeof headers === "object" &&
    typeof (headers as HeaderBag).get === "function" &&
    typeof (headers as HeaderBag).set === "function"
  );
}

/** The value of header `name` (case-insensitive), or undefined. */
export function readHeader(headers: unknown, name: string): unknown {
  if (isHeaderBag(headers)) return headers.get(name);
  if (headers === null || typeof headers !== "object") return undefined;
  const wanted = name.toLowerCase();
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() === wanted) return (headers as Record<string, unknown>)[key];
  }
  return undefined;
}

/** Sets header `name` on `holder.headers`, making a plain object when there is none. */
export function writeHeader(holder: { headers?: unknown }, name: string, value: string): void {
  const headers = holder.headers;
  if (isHeaderBag(headers)) {
    headers.set(name, value);
    return;
  }
  const plain: Record<string, unknown> = headers !== null && typeof headers === "object" ? (headers as Record<string, unknown>) : {};
  const wanted = name.toLowerCase();
  for (const key of Object.keys(plain)) if (key.toLowerCase() === wanted) delete plain[key];
  plain[name] = value;
  holder.headers = plain;
}

/**
 * A copy of `headers` of the same kind (the same copy's `AxiosHeaders`, or a plain object), so a
 * caller's config or error keeps working as it did; `edit` changes the copy only.
 */
export function copyHeaders(headers: unknown, edit: (copy: { headers?: unknown }) => void): unknown {
  let copy: unknown;
  if (isHeaderBag(headers)) {
    const Same = (headers as { constructor?: unknown }).constructor;
    copy = typeof Same === "function" ? new (Same as new (from: unknown) => unknown)(headers) : undefined;
    if (!isHeaderBag(copy)) copy = headers.toJSON?.() ?? {};
  } else {
    copy = headers !== null && typeof headers === "object" ? { ...(headers as Record<string, unknown>) } : {};
  }
  const holder = { headers: copy };
  edit(holder);
  return holder.headers;
}

/** Removes header `name` from a copy made by {@link copyHeaders}. */
export function deleteHeader(holder: { headers?: unknown }, name: string): void {
  const headers = holder.headers;
  if (isHeaderBag(headers) && typeof headers.delete === "function") {
    headers.delete(name);
    return;
  }
  if (headers === null || typeof headers !== "object") return;
  const wanted = name.toLowerCase();
  for (const key of Object.keys(headers)) if (key.toLowerCase() === wanted) delete (headers as Record<string, unknown>)[key];
}
