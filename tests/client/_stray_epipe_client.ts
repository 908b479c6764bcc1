/**
 * A client process for stray_errors_test.ts: 50 Gets through the client library to
 * two "nodes" that accept a connection and close it at once (the first at once, the
 * second after reading the preface), with the library's opt-in guard installed if
 * the first argument is `guard`. Prints `survived N` (N calls failed cleanly) and
 * exits 0, unless an uncaught error ends it first.
 *
 * @module
 */

import * as net from "node:net";
import { guardStrayNetworkErrors, RaftKvClient } from "../../src/client/mod.ts";

if (Deno.args[0] === "guard") guardStrayNetworkErrors();

async function listen(onConnection: (s: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return server;
}
const slam = await listen((s) => s.destroy());
const readThenClose = await listen((s) => {
  s.on("error", () => {});
  s.once("data", () => s.end());
});
const port = (s: net.Server) => (s.address() as net.AddressInfo).port;
const client = new RaftKvClient({
  endpoints: [`127.0.0.1:${port(slam)}`, `127.0.0.1:${port(readThenClose)}`],
  timeoutMs: 300,
});
let failed = 0;
for (let i = 0; i < 50; i++) {
  try {
    await client.get("k");
  } catch {
    failed++;
  }
}
console.log(`survived ${failed}`);
slam.close();
readThenClose.close();
Deno.exit(0);
