/**
 * The build parameters typed in the panel: `name = value` (or `name value`), one a line.
 */

/**
 * Parse the parameters textarea into `{name: value}`.
 *
 * Values stay strings: the server reads them as `nb2prod build -p NAME VALUE` does. Blank
 * lines and lines that do not start with a Python name are skipped; a later line wins.
 */
export function parseParams(text: string): Record<string, string> {
  const params: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Za-z_]\w*)\s*[=\s]\s*(.*?)\s*$/.exec(line);
    if (match) {
      params[match[1]] = match[2];
    }
  }
  return params;
}
