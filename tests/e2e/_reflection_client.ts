/**
 * What grpcurl does, on `@grpc/grpc-js`: a client that knows no raftkv type and
 * learns them all from a node's server reflection, as `grpcurl -plaintext HOST:PORT
 * list`, `describe SYMBOL` and `-d JSON HOST:PORT SERVICE/METHOD` do:
 *
 * - `list`: one `ServerReflectionInfo` stream, a `list_services` request;
 * - `describe`: `file_containing_symbol`, then `file_by_filename` for each import
 *   not sent yet, all on one stream; the files make a registry to look types up in;
 * - `invoke`: describe the service, turn the JSON into the request message with
 *   the reflected descriptor, call the method with the binary bytes, and render the
 *   answer as JSON with the reflected descriptor.
 *
 * grpcurl itself (a Go binary) cannot be installed on the test machines; this is
 * its protocol, step for step. Also: the health service's Check and Watch, with
 * the generated types.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import {
  create,
  createFileRegistry,
  type DescMessage,
  type FileRegistry,
  fromBinary,
  fromJson,
  type JsonValue,
  type MessageInitShape,
  type MessageShape,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import {
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import {
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../../src/gen/grpc/reflection/v1/reflection_pb.ts";
import {
  ServerReflectionRequestSchema as ServerReflectionRequestSchemaV1Alpha,
  ServerReflectionResponseSchema as ServerReflectionResponseSchemaV1Alpha,
} from "../../src/gen/grpc/reflection/v1alpha/reflection_pb.ts";
import {
  HealthCheckRequestSchema,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
} from "../../src/gen/health/v1/health_pb.ts";

/** Which reflection service to ask (grpcurl tries v1, then v1alpha). */
export type ReflectionVersion = "v1" | "v1alpha";

/** A reflection request, in v1's terms (v1alpha's messages are the same on the wire). */
export type ReflectionRequest = MessageInitShape<typeof ServerReflectionRequestSchema>;

function ser<D extends DescMessage>(schema: D): (v: MessageShape<D>) => Buffer {
  return (v) => Buffer.from(toBinary(schema, v));
}

function de<D extends DescMessage>(schema: D): (b: Buffer) => MessageShape<D> {
  return (b) => fromBinary(schema, new Uint8Array(b));
}

/** The streaming statuses of one health Watch call. */
export class HealthWatch {
  /** Every status received, oldest first. */
  readonly statuses: ServingStatus[] = [];
  /** How the call ended, once it has: `ok`, or the gRPC error. */
  ended: "ok" | grpc.ServiceError | undefined;
  readonly #call: grpc.ClientReadableStream<HealthCheckResponse>;

  /** @internal */
  constructor(call: grpc.ClientReadableStream<HealthCheckResponse>) {
    this.#call = call;
    call.on("data", (res: HealthCheckResponse) => this.statuses.push(res.status));
    call.on("error", (err: grpc.ServiceError) => this.ended = err);
    call.on("end", () => this.ended ??= "ok");
  }

  /** The statuses as names, `SERVING,NOT_SERVING`, for messages. */
  describe(): string {
    return this.statuses.map((s) => ServingStatus[s]).join(",") || "(none)";
  }

  /** Cancels the call (the client side of "until the client cancels"). */
  cancel(): void {
    this.#call.cancel();
  }
}

/**
 * A grpc-js client for one node that speaks reflection and health; its own
 * connection (a local subchannel pool). Close it with {@link ReflectionClient.close}.
 */
export class ReflectionClient {
  /** The node's address, `host:port`. */
  readonly address: string;
  readonly #client: grpc.Client;

  /**
   * Creates a client for `address` (`host:port`), plaintext unless `credentials` say
   * otherwise (`grpc.credentials.createSsl(...)`: grpcurl's `-cacert -cert -key`);
   * connects lazily.
   */
  constructor(address: string, credentials = grpc.credentials.createInsecure()) {
    this.address = address;
    this.#client = new grpc.Client(address, credentials, {
      "grpc.use_local_subchannel_pool": 1,
    });
  }

  /**
   * Sends `requests` on one `ServerReflectionInfo` stream, half-closes it, and
   * returns every response (v1alpha's translated to v1's types through the wire format).
   */
  async reflect(
    requests: readonly ReflectionRequest[],
    version: ReflectionVersion = "v1",
    timeoutMs = 10_000,
  ): Promise<ServerReflectionResponse[]> {
    const out: ServerReflectionResponse[] = [];
    const deadline = Date.now() + timeoutMs;
    if (version === "v1") {
      const call = this.#client.makeBidiStreamRequest(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        ser(ServerReflectionRequestSchema),
        de(ServerReflectionResponseSchema),
        new grpc.Metadata(),
        { deadline },
      );
      for (const r of requests) call.write(create(ServerReflectionRequestSchema, r));
      call.end();
      for await (const res of call) out.push(res as ServerReflectionResponse);
    } else {
      const call = this.#client.makeBidiStreamRequest(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        (v: Uint8Array) => Buffer.from(v),
        (b: Buffer) => new Uint8Array(b),
        new grpc.Metadata(),
        { deadline },
      );
      for (const r of requests) {
        const v1 = create(ServerReflectionRequestSchema, r);
        const alpha = fromBinary(
          ServerReflectionRequestSchemaV1Alpha,
          toBinary(ServerReflectionRequestSchema, v1),
        );
        call.write(toBinary(ServerReflectionRequestSchemaV1Alpha, alpha));
      }
      call.end();
      for await (const bytes of call) {
        // Decode as v1alpha first, so a v1-only answer would fail here, not pass unnoticed.
        const alpha = fromBinary(ServerReflectionResponseSchemaV1Alpha, bytes as Uint8Array);
        out.push(
          fromBinary(
            ServerReflectionResponseSchema,
            toBinary(ServerReflectionResponseSchemaV1Alpha, alpha),
          ),
        );
      }
    }
    return out;
  }

  /** `grpcurl list`: the services the node names. */
  async list(version: ReflectionVersion = "v1"): Promise<string[]> {
    const [res] = await this.reflect(
      [{ messageRequest: { case: "listServices", value: "" } }],
      version,
    );
    const r = res?.messageResponse;
    if (r?.case !== "listServicesResponse") throw new Error(`list_services answered ${r?.case}`);
    return r.value.service.map((s) => s.name);
  }

  /**
   * `grpcurl describe SYMBOL`: the files that declare `symbol` and everything they
   * import, fetched like grpcurl does, as a registry.
   *
   * @throws {Error} with the server's error_response, if it sends one
   */
  async describe(symbol: string, version: ReflectionVersion = "v1"): Promise<FileRegistry> {
    const files = new Map<string, FileDescriptorProto>();
    const take = (res: ServerReflectionResponse | undefined): void => {
      const r = res?.messageResponse;
      if (r?.case === "errorResponse") {
        throw new Error(`error_response ${r.value.errorCode}: ${r.value.errorMessage}`);
      }
      if (r?.case !== "fileDescriptorResponse") throw new Error(`unexpected answer ${r?.case}`);
      for (const b of r.value.fileDescriptorProto) {
        const fd = fromBinary(FileDescriptorProtoSchema, b);
        files.set(fd.name, fd);
      }
    };
    const [first] = await this.reflect(
      [{ messageRequest: { case: "fileContainingSymbol", value: symbol } }],
      version,
    );
    take(first);
    // Fetch any import the server did not send along (grpcurl does the same).
    for (;;) {
      const missing = [...files.values()].flatMap((f) => f.dependency).filter((d) => !files.has(d));
      if (missing.length === 0) break;
      const answers = await this.reflect(
        missing.map((value): ReflectionRequest => ({
          messageRequest: { case: "fileByFilename", value },
        })),
        version,
      );
      for (const a of answers) take(a);
    }
    return createFileRegistry(create(FileDescriptorSetSchema, { file: [...files.values()] }));
  }

  /**
   * `grpcurl -d JSON HOST:PORT SERVICE/METHOD`: a unary call built from reflection
   * alone; returns the answer as protobuf JSON.
   */
  async invoke(fullMethod: string, json: string, timeoutMs = 10_000): Promise<JsonValue> {
    const slash = fullMethod.lastIndexOf("/");
    const serviceName = fullMethod.slice(0, slash);
    const methodName = fullMethod.slice(slash + 1);
    const registry = await this.describe(serviceName);
    const service = registry.getService(serviceName);
    if (service === undefined) throw new Error(`reflection does not know ${serviceName}`);
    const method = service.methods.find((m) => m.name === methodName);
    if (method === undefined) throw new Error(`${serviceName} has no method ${methodName}`);
    const request = fromJson(method.input, JSON.parse(json) as JsonValue, { registry });
    const response = await new Promise<Uint8Array>((resolve, reject) => {
      this.#client.makeUnaryRequest<Uint8Array, Uint8Array>(
        `/${serviceName}/${methodName}`,
        (v) => Buffer.from(v),
        (b) => new Uint8Array(b),
        toBinary(method.input, request),
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => {
          if (err !== null) reject(err);
          else if (res === undefined) reject(new Error(`${fullMethod}: no response`));
          else resolve(res);
        },
      );
    });
    return toJson(method.output, fromBinary(method.output, response), { registry });
  }

  /** `grpc.health.v1.Health/Check` for `service`. Rejects with a grpc-js `ServiceError`. */
  check(service: string, timeoutMs = 2_000): Promise<ServingStatus> {
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(
        "/grpc.health.v1.Health/Check",
        ser(HealthCheckRequestSchema),
        de(HealthCheckResponseSchema),
        create(HealthCheckRequestSchema, { service }),
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => {
          if (err !== null) reject(err);
          else if (res === undefined) reject(new Error("Check: no response"));
          else resolve(res.status);
        },
      );
    });
  }

  /** Starts `grpc.health.v1.Health/Watch` for `service`; no deadline, cancel it when done. */
  watch(service: string): HealthWatch {
    return new HealthWatch(
      this.#client.makeServerStreamRequest(
        "/grpc.health.v1.Health/Watch",
        ser(HealthCheckRequestSchema),
        de(HealthCheckResponseSchema),
        create(HealthCheckRequestSchema, { service }),
        new grpc.Metadata(),
        {},
      ),
    );
  }

  /** Closes the channel and its connection. */
  close(): void {
    this.#client.close();
  }
}
