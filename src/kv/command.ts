/**
 * The wire form of a key-value command: what a normal Raft log entry carries.
 *
 * A {@link Command} is encoded as protobuf binary with the generated `CommandSchema`
 * (`proto/raftkv/v1/raft.proto`). An encoded command is never empty, because the `op`
 * field that every command sets always writes at least its tag; so an entry with empty
 * data is unambiguously a no-op entry (the one a new leader appends at the start of its
 * term, §8), not a command. {@link decodeCommand} refuses empty data, and the store
 * treats it as a no-op before decoding.
 *
 * @module
 */

import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { type Command, CommandSchema } from "../gen/raftkv/v1/raft_pb.ts";

export type { Command };

/**
 * Encodes a command as protobuf binary, for the data of a normal log entry.
 *
 * Accepts a `Command` or any init shape `create(CommandSchema, …)` accepts. Throws if
 * no operation is set: such a command would mean nothing to the state machine.
 */
export function encodeCommand(command: MessageInitShape<typeof CommandSchema>): Uint8Array {
  const message = create(CommandSchema, command);
  if (message.op.case === undefined) {
    throw new Error("Cannot encode command: no operation is set");
  }
  return toBinary(CommandSchema, message);
}

/**
 * Decodes the data of a normal log entry into a {@link Command}.
 *
 * Throws an Error starting "Cannot decode command:" if the data is empty (a no-op entry,
 * which carries no command), is not valid protobuf, or decodes to a message with no
 * operation set (for example bytes from another message type, or an operation added by
 * a newer version that this one does not know; applying that as a no-op would silently
 * diverge from nodes that do know it).
 *
 * The `bytes` fields of the result are views into `data`, as protobuf-es decodes them;
 * copy them before keeping them past a mutation of `data`.
 */
export function decodeCommand(data: Uint8Array): Command {
  if (data.length === 0) {
    throw new Error("Cannot decode command: the data is empty (a no-op entry carries no command)");
  }
  let command: Command;
  try {
    command = fromBinary(CommandSchema, data);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `Cannot decode command: ${data.length} bytes are not a valid protobuf Command (${reason})`,
      { cause: error },
    );
  }
  if (command.op.case === undefined) {
    throw new Error(
      `Cannot decode command: ${data.length} bytes decode to a Command with no operation set`,
    );
  }
  return command;
}
