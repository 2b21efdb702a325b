/**
 * Headers are handled by shape, never by class: an AxiosHeaders of any copy (anything with get and
 * set), or a plain object, as a caller who invokes the interceptor by hand may pass.
 */
import { AxiosHeaders } from "axios";
import AxiosNested from "axios-nested";
import { describe, expect, it } from "vitest";
import { copyHeaders, deleteHeader, readHeader, writeHeader } from "../src/headers.js";

const kinds = [
  ["our AxiosHeaders", () => new AxiosHeaders({ authorization: "Bearer a", "X-Other": "1" })],
  ["another copy's AxiosHeaders", () => new AxiosNested.AxiosHeaders({ authorization: "Bearer a", "X-Other": "1" })],
  ["a plain object", () => ({ authorization: "Bearer a", "X-Other": "1" })],
] as const;

describe.each(kinds)("headers as %s", (_name, make) => {
  it("reads a header whatever its case", () => {
    expect(readHeader(make(), "Authorization")).toBe("Bearer a");
    expect(readHeader(make(), "x-other")).toBe("1");
    expect(readHeader(make(), "missing")).toBeUndefined();
  });

  it("copies to the same kind; an edit changes the copy only", () => {
    const original = make();
    const copy = copyHeaders(original, (holder) => deleteHeader(holder, "Authorization"));
    expect(readHeader(copy, "authorization")).toBeUndefined();
    expect(readHeader(copy, "X-Other")).toBe("1");
    expect(readHeader(original, "authorization")).toBe("Bearer a");
    expect(Object.getPrototypeOf(copy)).toBe(Object.getPrototypeOf(original));
  });

  it("writes over any casing of the same header, leaving one", () => {
    const holder: { headers?: unknown } = { headers: make() };
    writeHeader(holder, "Authorization", "Bearer b");
    expect(readHeader(holder.headers, "authorization")).toBe("Bearer b");
    const names = Object.keys(holder.headers as object).filter((name) => name.toLowerCase() === "authorization");
    expect(names).toHaveLength(1);
  });
});

describe("headers that are missing or not an object", () => {
  it.each([undefined, null, "Authorization: x", 42])("%j: nothing to read, a plain object to write", (headers) => {
    expect(readHeader(headers, "Authorization")).toBeUndefined();
    const holder: { headers?: unknown } = { headers };
    writeHeader(holder, "Authorization", "Bearer b");
    expect(holder.headers).toEqual({ Authorization: "Bearer b" });
    const copy = copyHeaders(headers, (h) => deleteHeader(h, "Authorization"));
    expect(copy).toEqual({});
  });
});
