/**
 * The split of one flag and its value that the node's flags and the client CLI's
 * connection options share (src/server/flag_argument.ts): `--name=value`, `--name
 * value`, and a value missing when the next argument is absent or is a flag.
 *
 * @module
 */

import assert from "node:assert/strict";
import { readFlagArgument } from "../../src/server/flag_argument.ts";

Deno.test("a flag's value comes after = or as the next argument, and the flag says where it ended", () => {
  assert.deepEqual(readFlagArgument(["--id=2", "--x"], 0), { name: "--id", value: "2", last: 0 });
  assert.deepEqual(readFlagArgument(["--id", "2"], 0), { name: "--id", value: "2", last: 1 });
  assert.deepEqual(readFlagArgument(["a", "--peers", "1=h:1,2=h:2"], 1), {
    name: "--peers",
    value: "1=h:1,2=h:2",
    last: 2,
  }, "the first = splits; the value keeps the others");
  assert.deepEqual(readFlagArgument(["--peers=1=h:1"], 0), {
    name: "--peers",
    value: "1=h:1",
    last: 0,
  });
  assert.deepEqual(readFlagArgument(["--level", "-1"], 0), {
    name: "--level",
    value: "-1",
    last: 1,
  }, "one dash is a value, not a flag");
});

Deno.test("a value is missing at the end or before another flag, and empty after a bare =", () => {
  assert.deepEqual(readFlagArgument(["--id"], 0), { name: "--id", value: undefined, last: 0 });
  assert.deepEqual(readFlagArgument(["--id", "--listen", "x"], 0), {
    name: "--id",
    value: undefined,
    last: 0,
  });
  assert.deepEqual(readFlagArgument(["--id="], 0), { name: "--id", value: "", last: 0 });
  assert.deepEqual(readFlagArgument(["--id", ""], 0), { name: "--id", value: "", last: 1 });
  assert.throws(() => readFlagArgument(["--id"], 1), RangeError);
});
