/**
 * A raftkv client built on `@grpc/grpc-js`, the reference Node.js gRPC
 * implementation, rather than on Connect: it shows that a node speaks plain gRPC, and
 * how a Node program talks to raftkv with nothing but the generated code.
 *
 * No `.proto` loading, no `@grpc/proto-loader`: the grpc-js service definition is derived
 * from the generated service descriptors (`src/gen/`, made by `deno task generate`), and
 * messages are serialized with the generated schemas through `@bufbuild/protobuf`'s
 * `toBinary`/`fromBinary`.
 *
 * `put_get.ts` beside this file is a runnable example; the end-to-end tests use this
 * module too (`tests/e2e/_grpc_js_client.ts` re-exports it).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import {
  create,
  type DescMessage,
  type DescMethodUnary,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { ClusterService } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";

/** Serializer and deserializer of one message type, in grpc-js's `Buffer` terms. */
interface Codec<D extends DescMessage> {
  serialize(value: MessageShape<D>): Buffer;
  deserialize(bytes: Buffer): MessageShape<D>;
}

function codec<D extends DescMessage>(schema: D): Codec<D> {
  return {
    serialize: (value) => Buffer.from(toBinary(schema, value)),
    deserialize: (bytes) => fromBinary(schema, new Uint8Array(bytes)),
  };
}

/** The gRPC path of a method: `/raftkv.v1.KVService/Put`. */
export function methodPath(method: { parent: DescService; name: string }): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/**
 * A grpc-js {@link grpc.ServiceDefinition} for the unary methods of generated
 * services, keyed by each method's local name (`put`, `status`, ...). Streaming
 * methods (ClusterService/SnapshotSave) are left out: this client makes unary calls
 * only.
 *
 * @throws {Error} if two services share a method name
 */
export function serviceDefinition(...services: DescService[]): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const service of services) {
    for (const m of service.methods) {
      if (m.methodKind !== "unary") continue;
      if (def[m.localName] !== undefined) throw new Error(`method name ${m.localName} is taken`);
      const input = codec(m.input);
      const output = codec(m.output);
      def[m.localName] = {
        path: methodPath(m),
        requestStream: false,
        responseStream: false,
        originalName: m.name,
        requestSerialize: (v) => input.serialize(v as MessageShape<typeof m.input>),
        requestDeserialize: (b) => input.deserialize(b),
        responseSerialize: (v) => output.serialize(v as MessageShape<typeof m.output>),
        responseDeserialize: (b) => output.deserialize(b),
      };
    }
  }
  return def;
}

/** The client constructor for KVService and ClusterService on one channel. */
const RaftKvClient = grpc.makeGenericClientConstructor(
  serviceDefinition(KVService, ClusterService),
  "RaftKv",
);

/** The gRPC status code of a grpc-js error, or undefined if `err` is not one. */
export function grpcCode(err: unknown): grpc.status | undefined {
  if (typeof err === "object" && err !== null && "code" in err && typeof err.code === "number") {
    return err.code as grpc.status;
  }
  return undefined;
}

/** The name of a grpc-js status code: `INVALID_ARGUMENT`. */
export function grpcCodeName(code: grpc.status | undefined): string {
  return code === undefined ? "no gRPC status" : grpc.status[code] ?? String(code);
}

/**
 * A grpc-js client for one node: KVService and ClusterService over one channel with
 * its own connection (a local subchannel pool, so two clients never share a
 * connection). Close it with {@link GrpcJsClient.close}.
 */
export class GrpcJsClient {
  /** The node's address, `host:port`. */
  readonly address: string;
  readonly #client: grpc.Client;

  /** Creates a client for `address` (`host:port`), plaintext HTTP/2; connects lazily. */
  constructor(address: string) {
    this.address = address;
    this.#client = new RaftKvClient(address, grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
  }

  /** Calls a unary method with a deadline `timeoutMs` from now. Rejects with a grpc-js `ServiceError`. */
  call<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    request: MessageInitShape<I>,
    timeoutMs = 10_000,
  ): Promise<MessageShape<O>> {
    const input = codec(method.input);
    const output = codec(method.output);
    const msg = create(method.input, request);
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest<MessageShape<I>, MessageShape<O>>(
        methodPath(method),
        (v) => input.serialize(v),
        (b) => output.deserialize(b),
        msg,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => {
          if (err !== null) reject(err);
          else if (res === undefined) reject(new Error(`${methodPath(method)}: no response`));
          else resolve(res);
        },
      );
    });
  }

  /** Closes the channel and its connection. */
  close(): void {
    this.#client.close();
  }
}
