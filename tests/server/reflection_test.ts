/**
 * gRPC server reflection (src/server/reflection.ts) over Connect's in-memory
 * router transport, with the services a node registers: both
 * `grpc.reflection.v1` and `v1alpha`, every kind of request, errors as
 * `error_response`s on a stream that goes on, and imports sent once per stream.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  create,
  createFileRegistry,
  type DescFile,
  fromBinary,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import {
  file_google_protobuf_timestamp,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter, createClient, createRouterTransport } from "@connectrpc/connect";
import {
  ServerReflection,
  type ServerReflectionRequestSchema,
  type ServerReflectionResponse,
} from "../../src/gen/grpc/reflection/v1/reflection_pb.ts";
import {
  ServerReflection as ServerReflectionV1Alpha,
  type ServerReflectionRequestSchema as ServerReflectionRequestSchemaV1Alpha,
  type ServerReflectionResponse as ServerReflectionResponseV1Alpha,
} from "../../src/gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { Health } from "../../src/gen/health/v1/health_pb.ts";
import { ClusterService } from "../../src/gen/raftkv/v1/cluster_pb.ts";
import { KVService } from "../../src/gen/raftkv/v1/kv_pb.ts";
import { RaftService } from "../../src/gen/raftkv/v1/raft_pb.ts";
import { healthService } from "../../src/server/health.ts";
import { ReflectionIndex, registerReflection } from "../../src/server/reflection.ts";

type Request = MessageInitShape<typeof ServerReflectionRequestSchema>;
type RequestV1Alpha = MessageInitShape<typeof ServerReflectionRequestSchemaV1Alpha>;

/** The services a node registers (implementations do not matter here), then reflection. */
function nodeRoutes(r: ConnectRouter): void {
  r.service(RaftService, {});
  r.service(KVService, {});
  r.service(ClusterService, {});
  r.service(Health, healthService({ leader: () => 1, onLeaderChange: () => () => {} }));
  registerReflection(r);
}

const transport = createRouterTransport(nodeRoutes);
const v1 = createClient(ServerReflection, transport);
const v1alpha = createClient(ServerReflectionV1Alpha, transport);

async function* iterate<T>(items: readonly T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}

/** Sends `requests` on one v1 stream and returns every response. */
async function askV1(...requests: Request[]): Promise<ServerReflectionResponse[]> {
  const out: ServerReflectionResponse[] = [];
  for await (const res of v1.serverReflectionInfo(iterate(requests))) out.push(res);
  return out;
}

/** Sends `requests` on one v1alpha stream and returns every response. */
async function askV1Alpha(
  ...requests: RequestV1Alpha[]
): Promise<ServerReflectionResponseV1Alpha[]> {
  const out: ServerReflectionResponseV1Alpha[] = [];
  for await (const res of v1alpha.serverReflectionInfo(iterate(requests))) out.push(res);
  return out;
}

/** A response's decoded file descriptors; fails if it is not a file_descriptor_response. */
function filesOf(res: ServerReflectionResponse | ServerReflectionResponseV1Alpha | undefined) {
  assert.ok(res !== undefined, "no response");
  const r = res.messageResponse;
  assert.equal(r.case, "fileDescriptorResponse", `unexpected answer: ${JSON.stringify(r)}`);
  return r.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

/** A response's error code and message; fails if it is not an error_response. */
function errorOf(res: ServerReflectionResponse | ServerReflectionResponseV1Alpha | undefined): {
  code: number;
  message: string;
} {
  assert.ok(res !== undefined, "no response");
  const r = res.messageResponse;
  assert.equal(r.case, "errorResponse", `unexpected answer: ${r.case}`);
  return { code: r.value.errorCode, message: r.value.errorMessage };
}

/** The services listed by a list_services response. */
function servicesOf(
  res: ServerReflectionResponse | ServerReflectionResponseV1Alpha | undefined,
): string[] {
  assert.ok(res !== undefined, "no response");
  const r = res.messageResponse;
  assert.equal(r.case, "listServicesResponse", `unexpected answer: ${r.case}`);
  return r.value.service.map((s) => s.name);
}

const ALL_SERVICES = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "raftkv.v1.ClusterService",
  "raftkv.v1.KVService",
  "raftkv.v1.RaftService",
];

/** Checks that `files` are kv.proto, a complete description of KVService. */
function assertDescribesKv(files: FileDescriptorProto[]): void {
  assert.deepEqual(files.map((f) => f.name), ["raftkv/v1/kv.proto"]);
  const kv = files[0]!;
  assert.equal(kv.package, "raftkv.v1");
  const service = kv.service.find((s) => s.name === "KVService");
  assert.ok(service !== undefined, "kv.proto declares KVService");
  const methods = service.method.map((m) => m.name);
  for (const m of ["Put", "Get", "Delete", "CompareAndSwap"]) assert.ok(methods.includes(m), m);
  assert.deepEqual(methods, KVService.methods.map((m) => m.name));
  const put = service.method.find((m) => m.name === "Put")!;
  assert.equal(put.inputType, ".raftkv.v1.PutRequest");
  assert.equal(put.outputType, ".raftkv.v1.PutResponse");
  // Self-contained: a registry built from what was sent alone resolves the service.
  const reg = createFileRegistry(kv, () => undefined);
  const desc = reg.getService("raftkv.v1.KVService");
  assert.ok(desc !== undefined);
  assert.deepEqual(desc.methods.map((m) => m.name), methods);
  assert.deepEqual(desc.method.put?.input.fields.map((f) => f.name).slice(0, 2), [
    "key",
    "value",
  ]);
}

Deno.test("reflection v1: list_services names every service on the router", async () => {
  const [res] = await askV1({
    host: "node-1",
    messageRequest: { case: "listServices", value: "" },
  });
  assert.deepEqual(servicesOf(res), ALL_SERVICES);
  assert.equal(res?.validHost, "node-1");
  assert.equal(res?.originalRequest?.messageRequest.case, "listServices");
});

Deno.test("reflection v1: file_containing_symbol", async (t) => {
  for (
    const symbol of [
      "raftkv.v1.KVService",
      "raftkv.v1.KVService.Put",
      "raftkv.v1.PutRequest",
      "raftkv.v1.PutRequest.key",
      ".raftkv.v1.KVService",
    ]
  ) {
    await t.step(symbol, async () => {
      const [res] = await askV1({
        messageRequest: { case: "fileContainingSymbol", value: symbol },
      });
      assertDescribesKv(filesOf(res));
      assert.equal(res?.originalRequest?.messageRequest.value, symbol);
    });
  }

  await t.step("nested enum, enum value, and the other files", async () => {
    const cases: [string, string][] = [
      ["grpc.health.v1.HealthCheckResponse.ServingStatus", "health/v1/health.proto"],
      ["grpc.health.v1.HealthCheckResponse.SERVING", "health/v1/health.proto"],
      ["grpc.health.v1.Health.Watch", "health/v1/health.proto"],
      ["grpc.reflection.v1.ServerReflection", "grpc/reflection/v1/reflection.proto"],
      ["grpc.reflection.v1alpha.ErrorResponse", "grpc/reflection/v1alpha/reflection.proto"],
      ["raftkv.v1.ClusterService.Status", "raftkv/v1/cluster.proto"],
      ["raftkv.v1.RaftService", "raftkv/v1/raft.proto"],
    ];
    const responses = await askV1(
      ...cases.map(([symbol]): Request => ({
        messageRequest: { case: "fileContainingSymbol", value: symbol },
      })),
    );
    assert.deepEqual(
      responses.map((r) => filesOf(r)[0]?.name),
      cases.map(([, file]) => file),
    );
  });
});

Deno.test("reflection v1: file_by_filename", async () => {
  const [res] = await askV1({
    messageRequest: { case: "fileByFilename", value: "raftkv/v1/kv.proto" },
  });
  assertDescribesKv(filesOf(res));
});

Deno.test("reflection v1: what is unknown is an error_response, and the stream goes on", async () => {
  const responses = await askV1(
    { messageRequest: { case: "fileContainingSymbol", value: "raftkv.v1.NoSuchThing" } },
    { messageRequest: { case: "fileByFilename", value: "raftkv/v1/nope.proto" } },
    {
      messageRequest: {
        case: "fileContainingExtension",
        value: { containingType: "raftkv.v1.PutRequest", extensionNumber: 1000 },
      },
    },
    { messageRequest: { case: "allExtensionNumbersOfType", value: "raftkv.v1.Nope" } },
    { messageRequest: { case: "listServices", value: "*" } },
  );
  assert.equal(responses.length, 5);
  for (const res of responses.slice(0, 4)) assert.equal(errorOf(res).code, Code.NotFound);
  assert.match(errorOf(responses[0]).message, /raftkv\.v1\.NoSuchThing/);
  assert.equal(
    responses[0]?.originalRequest?.messageRequest.value,
    "raftkv.v1.NoSuchThing",
    "the error echoes the request",
  );
  assert.deepEqual(servicesOf(responses[4]), ALL_SERVICES);
});

Deno.test("reflection v1: all_extension_numbers_of_type of a known message is empty", async () => {
  const [res] = await askV1({
    messageRequest: { case: "allExtensionNumbersOfType", value: "raftkv.v1.PutRequest" },
  });
  const r = res?.messageResponse;
  assert.equal(r?.case, "allExtensionNumbersResponse");
  assert.equal(r.value.baseTypeName, "raftkv.v1.PutRequest");
  assert.deepEqual(r.value.extensionNumber, []);
});

Deno.test("reflection v1: a request with nothing set is INVALID_ARGUMENT", async () => {
  const [res] = await askV1({ host: "h" });
  assert.equal(errorOf(res).code, Code.InvalidArgument);
});

Deno.test("reflection v1alpha answers like v1", async (t) => {
  await t.step("list_services", async () => {
    const [res] = await askV1Alpha({ messageRequest: { case: "listServices", value: "" } });
    assert.deepEqual(servicesOf(res), ALL_SERVICES);
  });
  await t.step("file_containing_symbol: service, method, message", async () => {
    const responses = await askV1Alpha(
      ...["raftkv.v1.KVService", "raftkv.v1.KVService.Put", "raftkv.v1.PutRequest"].map(
        (value): RequestV1Alpha => ({ messageRequest: { case: "fileContainingSymbol", value } }),
      ),
    );
    assert.equal(responses.length, 3);
    for (const res of responses) assertDescribesKv(filesOf(res));
  });
  await t.step("file_by_filename", async () => {
    const [res] = await askV1Alpha({
      messageRequest: { case: "fileByFilename", value: "raftkv/v1/kv.proto" },
    });
    assertDescribesKv(filesOf(res));
  });
  await t.step("unknown symbol: NOT_FOUND", async () => {
    const [res] = await askV1Alpha({
      host: "x",
      messageRequest: { case: "fileContainingSymbol", value: "nope.Nope" },
    });
    assert.equal(errorOf(res).code, Code.NotFound);
    assert.equal(res?.validHost, "x");
    assert.equal(res?.originalRequest?.messageRequest.value, "nope.Nope");
  });
});

// -----------------------------------------------------------------------------
// Imports and extensions, on a made-up file (the raftkv protos have neither).

/** demo/v1/demo.proto: imports timestamp.proto, extends its own message, has a service. */
function demoFile(): DescFile {
  const proto = create(FileDescriptorProtoSchema, {
    name: "demo/v1/demo.proto",
    package: "demo.v1",
    syntax: "proto2",
    dependency: ["google/protobuf/timestamp.proto"],
    messageType: [
      {
        name: "Event",
        field: [{
          name: "at",
          number: 1,
          label: 1, // optional
          type: 11, // message
          typeName: ".google.protobuf.Timestamp",
        }],
        extensionRange: [{ start: 100, end: 200 }],
        nestedType: [{ name: "Inner", field: [] }],
      },
    ],
    extension: [
      { name: "tag", number: 150, label: 1, type: 9, extendee: ".demo.v1.Event" },
      { name: "weight", number: 120, label: 1, type: 5, extendee: ".demo.v1.Event" },
    ],
    service: [{
      name: "DemoService",
      method: [{ name: "Emit", inputType: ".demo.v1.Event", outputType: ".demo.v1.Event" }],
    }],
  });
  const reg = createFileRegistry(
    proto,
    (name) =>
      name === file_google_protobuf_timestamp.proto.name
        ? file_google_protobuf_timestamp
        : undefined,
  );
  const file = reg.getFile("demo/v1/demo.proto");
  assert.ok(file !== undefined);
  return file;
}

Deno.test("reflection index: imports are sent with a file, once per stream", () => {
  const demo = demoFile();
  const index = new ReflectionIndex(demo.services);
  const names = (bytes: Uint8Array[]): string[] =>
    bytes.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
  const sent = new Set<string>();
  assert.deepEqual(names(index.withDependencies(demo, sent)), [
    "demo/v1/demo.proto",
    "google/protobuf/timestamp.proto",
  ]);
  // Already sent on this stream: only the file asked for.
  assert.deepEqual(names(index.withDependencies(demo, sent)), ["demo/v1/demo.proto"]);
  // A new stream gets everything again.
  assert.deepEqual(names(index.withDependencies(demo, new Set())), [
    "demo/v1/demo.proto",
    "google/protobuf/timestamp.proto",
  ]);
  const fileOf = (symbol: string): string | undefined =>
    index.fileContainingSymbol(symbol)?.proto.name;
  assert.equal(
    index.fileByName("google/protobuf/timestamp.proto")?.proto.name,
    "google/protobuf/timestamp.proto",
  );
  assert.equal(fileOf("google.protobuf.Timestamp"), "google/protobuf/timestamp.proto");
  assert.equal(fileOf("google.protobuf.Timestamp.seconds"), "google/protobuf/timestamp.proto");
  assert.equal(fileOf("demo.v1.Event.Inner"), "demo/v1/demo.proto");
  assert.equal(fileOf("demo.v1.Event.at"), "demo/v1/demo.proto");
  assert.equal(fileOf("demo.v1.DemoService.Emit"), "demo/v1/demo.proto");
  assert.equal(fileOf("demo.v1.tag"), "demo/v1/demo.proto");
  assert.equal(fileOf("demo.v1.Nope"), undefined);
  assert.deepEqual(index.serviceNames, ["demo.v1.DemoService"]);
});

Deno.test("reflection index: extensions", () => {
  const index = new ReflectionIndex(demoFile().services);
  assert.deepEqual(index.extensionNumbers("demo.v1.Event"), [120, 150]);
  assert.deepEqual(index.extensionNumbers("demo.v1.Event.Inner"), []);
  assert.deepEqual(index.extensionNumbers("google.protobuf.Timestamp"), []);
  assert.equal(index.extensionNumbers("demo.v1.Nope"), undefined);
  assert.equal(
    index.fileContainingExtension("demo.v1.Event", 150)?.proto.name,
    "demo/v1/demo.proto",
  );
  assert.equal(index.fileContainingExtension("demo.v1.Event", 151), undefined);
});

Deno.test("reflection over a router: imports and extensions through the stream", async () => {
  const demo = demoFile();
  const t = createRouterTransport((r) => {
    r.service(demo.services[0]!, {});
    registerReflection(r);
  });
  const client = createClient(ServerReflection, t);
  const out: ServerReflectionResponse[] = [];
  for await (
    const res of client.serverReflectionInfo(iterate<Request>([
      { messageRequest: { case: "fileContainingSymbol", value: "demo.v1.DemoService" } },
      {
        messageRequest: {
          case: "fileContainingExtension",
          value: { containingType: "demo.v1.Event", extensionNumber: 120 },
        },
      },
      { messageRequest: { case: "allExtensionNumbersOfType", value: "demo.v1.Event" } },
      { messageRequest: { case: "listServices", value: "" } },
    ]))
  ) out.push(res);
  assert.deepEqual(filesOf(out[0]).map((f) => f.name), [
    "demo/v1/demo.proto",
    "google/protobuf/timestamp.proto",
  ]);
  assert.deepEqual(filesOf(out[1]).map((f) => f.name), ["demo/v1/demo.proto"]);
  const numbers = out[2]?.messageResponse;
  assert.equal(numbers?.case, "allExtensionNumbersResponse");
  assert.deepEqual(numbers.value.extensionNumber, [120, 150]);
  assert.deepEqual(servicesOf(out[3]), [
    "demo.v1.DemoService",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
  ]);
});
