/** Plain-text output of the command-line tools. */

/** Columns padded to their widest cell; a line longer than the terminal is cut with an ellipsis. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const width = Math.max(60, process.stdout.columns ?? 160);
  return [header, ...rows].map((row) => {
    const line = `  ${row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ')}`;
    return line.length > width ? `${line.slice(0, width - 1)}…` : line;
  });
}

/** `code: text` on one line. */
export function detail(code: string | undefined, text: string | undefined): string {
  return [code, text].filter(Boolean).join(': ').replace(/\s+/g, ' ');
}

export function shortTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}
