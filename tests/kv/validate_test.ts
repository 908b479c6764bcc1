/**
 * The input rules of the public API, checked by the gRPC layer before proposing.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  KvInputError,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  validateKey,
  validateValue,
} from "../../src/kv/mod.ts";

function assertInputError(fn: () => void, message: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof KvInputError, `expected a KvInputError, got ${error}`);
    assert.equal(error.name, "KvInputError");
    assert.equal(error.message, message);
    return true;
  });
}

Deno.test("validateKey", async (t) => {
  await t.step("the limit is 4 KiB", () => {
    assert.equal(MAX_KEY_BYTES, 4096);
  });

  await t.step("an empty key is rejected", () => {
    assertInputError(() => validateKey(""), "Cannot use key: key is empty");
  });

  await t.step("a 4096-byte key is accepted", () => {
    validateKey("a".repeat(4096));
    validateKey("é".repeat(2048)); // 2 bytes each
    validateKey("😀".repeat(1024)); // 4 bytes each, a surrogate pair in JS
  });

  await t.step("a 4097-byte key is rejected, naming its size and the limit", () => {
    assertInputError(
      () => validateKey("a".repeat(4097)),
      "Cannot use key: 4097 bytes is over the 4096-byte limit",
    );
  });

  await t.step("the limit counts UTF-8 bytes, not characters", () => {
    assertInputError(
      () => validateKey("é".repeat(2049)),
      "Cannot use key: 4098 bytes is over the 4096-byte limit",
    );
  });

  await t.step("a key with a lone surrogate (not valid UTF-8) is rejected", () => {
    for (const key of ["\ud800", "a\udc00b", "\ud83d"]) {
      assertInputError(
        () => validateKey(key),
        "Cannot use key: key is not valid UTF-8 (it has a lone surrogate)",
      );
    }
  });

  await t.step("a key with a well-formed surrogate pair is accepted", () => {
    validateKey("\ud83d\ude00");
  });
});

Deno.test("validateValue", async (t) => {
  await t.step("the limit is 1 MiB", () => {
    assert.equal(MAX_VALUE_BYTES, 1_048_576);
  });

  await t.step("an empty value is accepted", () => {
    validateValue(new Uint8Array());
  });

  await t.step("a 1 MiB value is accepted", () => {
    validateValue(new Uint8Array(1_048_576));
  });

  await t.step("a 1 MiB + 1 value is rejected, naming its size and the limit", () => {
    assertInputError(
      () => validateValue(new Uint8Array(1_048_577)),
      "Cannot use value: 1048577 bytes is over the 1048576-byte limit",
    );
  });
});
