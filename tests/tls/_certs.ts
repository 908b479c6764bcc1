/**
 * Test certificates: the PKI of `deno task certs` (scripts/pki.ts), made in a
 * temp dir by each test.
 *
 * @module
 */

export { type CertFiles, makePki, type TestCa, type TestPki } from "../../scripts/pki.ts";
