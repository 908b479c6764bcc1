/**
 * A raftkv client on `@grpc/grpc-js`, the reference Node.js gRPC library: asks a node
 * for its status, stores a value and reads it back.
 *
 * ```sh
 * deno run --allow-net examples/grpc_js/put_get.ts --endpoint 127.0.0.1:7001
 * deno run --allow-net examples/grpc_js/put_get.ts --endpoint 127.0.0.1:7002 --key k --value v
 * ```
 *
 * It loads no `.proto`: `client.ts` builds the grpc-js client from the generated
 * descriptors in `src/gen/` and (de)serializes with `@bufbuild/protobuf`. Any node
 * answers: a follower forwards the calls to the leader.
 *
 * Node.js runs it too (no Deno API is used), with a TypeScript loader, e.g.
 * `npx tsx examples/grpc_js/put_get.ts --endpoint 127.0.0.1:7001` after
 * `npm i @grpc/grpc-js @bufbuild/protobuf` (the versions in deno.json).
 *
 * Prints one line per call; exits 0 when the value read back is the one written, 1 when
 * it is not, 2 on bad usage, 3 when a call fails (its gRPC status is printed).
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { ClusterService, Role } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";
import { grpcCode, grpcCodeName, GrpcJsClient } from "./client.ts";

const USAGE = "usage: put_get.ts [--endpoint HOST:PORT] [--key KEY] [--value VALUE]";

function parse(): { endpoint: string; key: string; value: string } {
  try {
    const { values } = parseArgs({
      args: process.argv.slice(2),
      options: {
        endpoint: { type: "string", default: "127.0.0.1:7001" },
        key: { type: "string", default: "greeting" },
        value: { type: "string", default: "hello from grpc-js" },
      },
    });
    return { endpoint: values.endpoint, key: values.key, value: values.value };
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    process.exit(2);
  }
}

const { endpoint, key, value } = parse();
const client = new GrpcJsClient(endpoint);
let step = "Status";
try {
  // ClusterService.Status: which node answered, and whom it follows.
  const s = await client.call(ClusterService.method.status, {}, 5_000);
  console.log(
    `status: node ${s.id} at ${endpoint} is ${Role[s.role]}, term ${s.term}, leader ${s.leaderId}`,
  );

  step = "Put";
  const put = await client.call(KVService.method.put, {
    key,
    value: new TextEncoder().encode(value),
  }, 5_000);
  console.log(`put ${key} = ${JSON.stringify(value)}: OK, index ${put.index}`);

  step = "Get";
  const got = await client.call(KVService.method.get, { key }, 5_000);
  const read = new TextDecoder().decode(got.value);
  console.log(`get ${key}: ${got.found ? JSON.stringify(read) : "not found"}`);
  if (!got.found || read !== value) {
    console.error(`read back ${got.found ? JSON.stringify(read) : "nothing"}, wrote ${value}`);
    process.exitCode = 1;
  }
} catch (err) {
  // A grpc-js ServiceError: `code` is the gRPC status, `details` the server's message.
  const details = (err as { details?: string }).details ?? (err as Error).message;
  console.error(`${step} failed: ${grpcCodeName(grpcCode(err))}: ${details}`);
  process.exitCode = 3;
} finally {
  client.close();
}
