/**
 * Plain-text tables for the client CLI.
 *
 * @module
 */

/** Spaces between two columns. */
const GAP = "  ";

/**
 * Renders rows under a header as left-aligned columns separated by two spaces,
 * one line per row, without a trailing newline or trailing spaces. A row may have
 * more cells than the header: the extra ones are appended after the last column
 * without affecting the widths (a note such as the reason a node is down). A
 * missing cell renders as empty.
 */
export function renderTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string => {
    const padded = header.map((_, i) => (cells[i] ?? "").padEnd(widths[i] ?? 0));
    const extra = cells.slice(header.length);
    return [...padded, ...extra].join(GAP).trimEnd();
  };
  return [line(header), ...rows.map(line)].join("\n");
}
