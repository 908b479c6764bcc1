/**
 * gRPC server reflection (`grpc.reflection.v1.ServerReflection` and its older
 * twin `grpc.reflection.v1alpha.ServerReflection`, which grpcurl falls back to),
 * so that tools such as grpcurl can list, describe and call a node's services
 * with no `.proto` file at hand.
 *
 * It answers from the file descriptors that protoc-gen-es embeds in the code it
 * generates (`src/gen/`): the files of every service registered on the router,
 * with their transitive imports. No maintained package serves reflection on a
 * Connect-ES v2 router, hence this small one. Behaviour follows grpc-go's
 * reference implementation:
 *
 * - `list_services`: every service on the router, the reflection services included;
 * - `file_by_filename`, `file_containing_symbol` (a package-qualified service,
 *   method, message, field, oneof, enum, enum value or extension, nested or not)
 *   and `file_containing_extension`: the file, then those of its transitive
 *   imports not yet sent on this stream;
 * - `all_extension_numbers_of_type`: the extension numbers of a known message
 *   (none, for the messages served here);
 * - anything unknown: an `error_response` with `NOT_FOUND` and the stream goes on;
 *   a request with nothing set: `INVALID_ARGUMENT`, likewise.
 *
 * ```ts
 * connectNodeAdapter({ routes: (r) => {
 *   r.service(KVService, impl);
 *   registerReflection(r); // lists KVService and the two reflection services
 * } });
 * ```
 *
 * @module
 */

import {
  create,
  type DescExtension,
  type DescFile,
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import {
  ServerReflection as ServerReflectionV1,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../gen/grpc/reflection/v1/reflection_pb.ts";
import {
  ServerReflection as ServerReflectionV1Alpha,
  ServerReflectionRequestSchema as ServerReflectionRequestSchemaV1Alpha,
  ServerReflectionResponseSchema as ServerReflectionResponseSchemaV1Alpha,
} from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";

/** What a symbol lookup found: the file that declares it. */
type SymbolTable = Map<string, DescFile>;

/**
 * The descriptors reflection answers from: the files of a set of services, their
 * transitive imports, and every symbol and extension they declare.
 */
export class ReflectionIndex {
  /** The fully-qualified names of the services, sorted. */
  readonly serviceNames: readonly string[];
  readonly #files = new Map<string, DescFile>();
  readonly #symbols: SymbolTable = new Map();
  /** Extensions by extendee type name, then by field number. */
  readonly #extensions = new Map<string, Map<number, DescExtension>>();
  readonly #messages = new Set<string>();
  readonly #encoded = new Map<string, Uint8Array>();

  /** Indexes the files of `services` (duplicates are fine) and their imports. */
  constructor(services: Iterable<DescService>) {
    const names = new Set<string>();
    for (const s of services) {
      names.add(s.typeName);
      this.#addFile(s.file);
    }
    this.serviceNames = [...names].sort();
  }

  #addFile(file: DescFile): void {
    // DescFile.name drops ".proto"; reflection speaks of files as imports name them.
    const name = file.proto.name;
    if (this.#files.has(name)) return;
    this.#files.set(name, file);
    for (const dep of file.dependencies) this.#addFile(dep);
    const pkg = file.proto.package;
    const scope = pkg === "" ? "" : `${pkg}.`;
    for (const m of file.messages) this.#addMessage(file, m);
    for (const e of file.enums) {
      this.#symbols.set(e.typeName, file);
      for (const v of e.values) this.#symbols.set(`${scope}${v.name}`, file);
    }
    for (const x of file.extensions) this.#addExtension(file, x);
    for (const s of file.services) {
      this.#symbols.set(s.typeName, file);
      for (const m of s.methods) this.#symbols.set(`${s.typeName}.${m.name}`, file);
    }
  }

  #addMessage(file: DescFile, m: DescMessage): void {
    this.#symbols.set(m.typeName, file);
    this.#messages.add(m.typeName);
    for (const f of m.fields) this.#symbols.set(`${m.typeName}.${f.name}`, file);
    for (const o of m.oneofs) this.#symbols.set(`${m.typeName}.${o.name}`, file);
    for (const n of m.nestedMessages) this.#addMessage(file, n);
    for (const e of m.nestedEnums) {
      this.#symbols.set(e.typeName, file);
      // Enum values are siblings of their enum, in the enclosing message's scope.
      for (const v of e.values) this.#symbols.set(`${m.typeName}.${v.name}`, file);
    }
    for (const x of m.nestedExtensions) this.#addExtension(file, x);
  }

  #addExtension(file: DescFile, x: DescExtension): void {
    this.#symbols.set(x.typeName, file);
    let byNumber = this.#extensions.get(x.extendee.typeName);
    if (byNumber === undefined) {
      byNumber = new Map();
      this.#extensions.set(x.extendee.typeName, byNumber);
    }
    byNumber.set(x.number, x);
  }

  /** The file named `name` (as in an import: `raftkv/v1/kv.proto`), if indexed. */
  fileByName(name: string): DescFile | undefined {
    return this.#files.get(name);
  }

  /** The file declaring the fully-qualified `symbol` (a leading dot is allowed), if any. */
  fileContainingSymbol(symbol: string): DescFile | undefined {
    return this.#symbols.get(symbol.startsWith(".") ? symbol.slice(1) : symbol);
  }

  /** The file declaring extension `number` of message `typeName`, if any. */
  fileContainingExtension(typeName: string, number: number): DescFile | undefined {
    return this.#extensions.get(typeName)?.get(number)?.file;
  }

  /** The extension numbers of message `typeName`, ascending; undefined if the type is unknown. */
  extensionNumbers(typeName: string): number[] | undefined {
    if (!this.#messages.has(typeName)) return undefined;
    return [...(this.#extensions.get(typeName)?.keys() ?? [])].sort((a, b) => a - b);
  }

  /** The serialized `google.protobuf.FileDescriptorProto` of an indexed file. */
  encode(file: DescFile): Uint8Array {
    let bytes = this.#encoded.get(file.proto.name);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.#encoded.set(file.proto.name, bytes);
    }
    return bytes;
  }

  /**
   * `file` then its transitive imports, breadth first, leaving out the imports
   * already in `sent` (the file itself is always included); adds them all to `sent`.
   */
  withDependencies(file: DescFile, sent: Set<string>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const queue: DescFile[] = [file];
    const seen = new Set<string>();
    for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
      const name = f.proto.name;
      if (seen.has(name)) continue;
      seen.add(name);
      if (out.length === 0 || !sent.has(name)) {
        sent.add(name);
        out.push(this.encode(f));
      }
      queue.push(...f.dependencies);
    }
    return out;
  }
}

type ResponseInit = MessageInitShape<typeof ServerReflectionResponseSchema>;

function errorResponse(req: ServerReflectionRequest, code: Code, message: string): ResponseInit {
  return {
    validHost: req.host,
    originalRequest: req,
    messageResponse: {
      case: "errorResponse",
      value: { errorCode: code, errorMessage: message },
    },
  };
}

function filesResponse(req: ServerReflectionRequest, files: Uint8Array[]): ResponseInit {
  return {
    validHost: req.host,
    originalRequest: req,
    messageResponse: {
      case: "fileDescriptorResponse",
      value: { fileDescriptorProto: files },
    },
  };
}

/**
 * The answer to one request of a reflection stream. `sent` holds the names of the
 * files already sent on that stream, so imports go out once per stream.
 */
export function answer(
  index: ReflectionIndex,
  req: ServerReflectionRequest,
  sent: Set<string>,
): ServerReflectionResponse {
  const r = req.messageRequest;
  let init: ResponseInit;
  switch (r.case) {
    case "listServices":
      init = {
        validHost: req.host,
        originalRequest: req,
        messageResponse: {
          case: "listServicesResponse",
          value: { service: index.serviceNames.map((name) => ({ name })) },
        },
      };
      break;
    case "fileByFilename": {
      const file = index.fileByName(r.value);
      init = file === undefined
        ? errorResponse(req, Code.NotFound, `file not found: ${r.value}`)
        : filesResponse(req, index.withDependencies(file, sent));
      break;
    }
    case "fileContainingSymbol": {
      const file = index.fileContainingSymbol(r.value);
      init = file === undefined
        ? errorResponse(req, Code.NotFound, `symbol not found: ${r.value}`)
        : filesResponse(req, index.withDependencies(file, sent));
      break;
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = r.value;
      const file = index.fileContainingExtension(containingType, extensionNumber);
      init = file === undefined
        ? errorResponse(
          req,
          Code.NotFound,
          `extension not found: ${containingType} field ${extensionNumber}`,
        )
        : filesResponse(req, index.withDependencies(file, sent));
      break;
    }
    case "allExtensionNumbersOfType": {
      const numbers = index.extensionNumbers(r.value);
      init = numbers === undefined
        ? errorResponse(req, Code.NotFound, `message type not found: ${r.value}`)
        : {
          validHost: req.host,
          originalRequest: req,
          messageResponse: {
            case: "allExtensionNumbersResponse",
            value: { baseTypeName: r.value, extensionNumber: numbers },
          },
        };
      break;
    }
    default:
      init = errorResponse(req, Code.InvalidArgument, "the request sets no message_request");
  }
  return create(ServerReflectionResponseSchema, init);
}

/**
 * Registers `grpc.reflection.v1.ServerReflection` and
 * `grpc.reflection.v1alpha.ServerReflection` on `router`. The services they list
 * and describe are those on the router when the first reflection call arrives,
 * so services registered after this call are included too.
 */
export function registerReflection(router: ConnectRouter): void {
  let index: ReflectionIndex | undefined;
  const getIndex = (): ReflectionIndex => {
    index ??= new ReflectionIndex(router.handlers.map((h) => h.service));
    return index;
  };
  router.service(ServerReflectionV1, {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) yield answer(getIndex(), req, sent);
    },
  });
  // v1alpha has the same messages under another package: translate through the wire format.
  router.service(ServerReflectionV1Alpha, {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const alphaReq of requests) {
        const req = fromBinary(
          ServerReflectionRequestSchema,
          toBinary(ServerReflectionRequestSchemaV1Alpha, alphaReq),
        );
        const res = answer(getIndex(), req, sent);
        yield fromBinary(
          ServerReflectionResponseSchemaV1Alpha,
          toBinary(ServerReflectionResponseSchema, res),
        );
      }
    },
  });
}
