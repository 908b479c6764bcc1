// The raftkv client library on Node: run against a cluster with
//
//   deno bundle --quiet --frozen -o examples/client_node/raftkv-client.mjs src/client/mod.ts
//   node examples/client_node/example.mjs 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003
//
// The bundle is the library and its npm dependencies (Connect-ES, protobuf-es, sorted-btree)
// in one ES module; it uses node:http2 and nothing of Deno's. tests/client/node_example_test.ts
// runs this against a real node.
import { acquireLock, RaftKvClient } from "./raftkv-client.mjs";

const client = new RaftKvClient({ endpoints: process.argv.slice(2) });
const put = await client.put("from-node/greeting", "hello");
const page = await client.range({ prefix: "from-node/" });
const lock = await acquireLock(client, "locks/from-node", { ttl: 5 });
await lock.release();
console.log(JSON.stringify({
  index: String(put.index),
  keys: page.kvs.map((kv) => kv.key),
  value: new TextDecoder().decode(page.kvs[0].value),
  locked: lock.key,
}));
