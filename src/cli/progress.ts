/**
 * A live progress line for long-running tasks (`deno task bench`, `deno task
 * chaos`): on a terminal, one line rewritten in place (carriage return, erase
 * line); anywhere else (CI, a pipe, a file) nothing at all, so logs stay quiet
 * and hold only results. Written to stderr, so stdout keeps only the results.
 *
 * @module
 */

/** Where the line goes: Deno.stderr, or a fake in tests. */
export interface ProgressSink {
  isTerminal(): boolean;
  writeSync(bytes: Uint8Array): number;
}

/** A live line; both methods do nothing when the sink is not a terminal. */
export interface Progress {
  /** True when lines are shown (the sink is a terminal). */
  readonly live: boolean;
  /** Replaces the line with `text`. */
  update(text: string): void;
  /** Erases the line, before results are printed. */
  clear(): void;
}

const encoder = new TextEncoder();

function writeAll(sink: ProgressSink, text: string): void {
  const bytes = encoder.encode(text);
  let done = 0;
  while (done < bytes.length) done += sink.writeSync(bytes.subarray(done));
}

/** A progress line on `sink` (stderr by default), shown only on a terminal. */
export function terminalProgress(sink: ProgressSink = Deno.stderr): Progress {
  const live = sink.isTerminal();
  let shown = false;
  return {
    live,
    update(text) {
      if (!live) return;
      writeAll(sink, `\r\x1b[2K${text}`);
      shown = true;
    },
    clear() {
      if (!live || !shown) return;
      writeAll(sink, "\r\x1b[2K");
      shown = false;
    },
  };
}

/** `95 s`, `4 min 5 s`: a duration for a progress line. */
export function formatSeconds(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}
