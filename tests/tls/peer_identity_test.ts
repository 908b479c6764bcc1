/**
 * A peer certificate names its member as SAN URI raftkv://node/<id>; nothing else
 * in the SAN (DNS names, IPs, other URIs, a malformed id) names one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { peerIdsOf, peerUri } from "../../src/tls/peer_identity.ts";

Deno.test("the SAN URI raftkv://node/<id> names member id, and nothing else does", () => {
  assert.equal(peerUri(2), "raftkv://node/2");
  assert.deepEqual(peerIdsOf("URI:raftkv://node/2, DNS:localhost, IP Address:127.0.0.1"), [2]);
  assert.deepEqual(peerIdsOf("DNS:node-2, IP Address:127.0.0.1"), []);
  assert.deepEqual(peerIdsOf(undefined), []);
  assert.deepEqual(peerIdsOf("URI:spiffe://x/node/2, URI:raftkv://node/"), []);
  assert.deepEqual(
    peerIdsOf("URI:raftkv://node/02, URI:raftkv://node/2x, URI:raftkv://node/-1"),
    [],
  );
  assert.deepEqual(peerIdsOf("URI:raftkv://node/1, URI:raftkv://node/3"), [1, 3]);
});
