/**
 * The grpc-js client of the end-to-end tests: the one of the grpc-js example
 * (`examples/grpc_js/client.ts`), so that the example is what the tests run.
 *
 * @module
 */

export * from "../../examples/grpc_js/client.ts";
