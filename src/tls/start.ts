/**
 * Starting TLS from main: the node's certificates and authorization policy are read
 * and checked before the data dir is touched (a bad certificate is a usage error,
 * like a bad flag), and are reloaded while the node runs (reload.ts).
 *
 * main imports this module only when a TLS flag is set: a plaintext node need not
 * load node:crypto's X.509, the policy's YAML parser or the TLS dialer at start
 * (README, "Start-up time").
 *
 * @module
 */

import type { Logger } from "../raft/logger.ts";
import type { ServerSecurity } from "../server/server.ts";
import { Authorizer } from "./authorizer.ts";
import type { TlsConfig } from "./config.ts";
import { CredentialsError, CredentialsStore } from "./credentials.ts";
import { TlsDialer } from "./dial.ts";
import { PolicyError } from "./policy.ts";
import { type Reloadable, Reloader } from "./reload.ts";

/** What a node with TLS runs with. */
export interface NodeTls {
  readonly security: ServerSecurity;
  /** Reloads the certificates and the policy; main starts it once the node listens. */
  readonly reloader: Reloader;
  /** Dials peers with the node's credentials. */
  readonly dialer: TlsDialer;
}

/**
 * Reads the node's credentials and policy for `config`, or prints why they cannot
 * be used and answers 2 (the exit code of a usage error).
 */
export async function startTls(
  config: TlsConfig,
  nodeId: number,
  logger: Logger,
): Promise<NodeTls | 2> {
  try {
    const credentials = await CredentialsStore.open(config, nodeId);
    const authorizer = await Authorizer.open(config.authPolicyFile);
    const certs: Reloadable = {
      name: "TLS certificates",
      reload: () => credentials.reload(),
      describe: () => ({
        subject: credentials.current.cert.subject.replaceAll("\n", ", "),
        notAfter: credentials.current.cert.validTo,
      }),
    };
    return {
      security: { credentials, authorizer },
      reloader: new Reloader([certs, authorizer], logger),
      dialer: new TlsDialer(credentials),
    };
  } catch (err) {
    if (err instanceof CredentialsError || err instanceof PolicyError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    throw err;
  }
}
