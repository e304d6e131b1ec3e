/** Command lines an operator can paste into a POSIX shell. */

/** Quotes `word` for a POSIX shell when it needs it. */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Joins words into one shell command line. */
export function shellCommand(words: readonly string[]): string {
  return words.map(shellQuote).join(" ");
}

/** The `ztna identity issue` command line for the given request. */
export function issueCommandLine(request: {
  caDir: string;
  name: string;
  role: string;
  services?: readonly string[];
  hosts?: readonly string[];
  outDir: string;
}): string {
  const words = [
    "ztna",
    "identity",
    "issue",
    "--ca-dir",
    request.caDir,
    "--name",
    request.name,
    "--role",
    request.role,
  ];
  for (const service of request.services ?? []) words.push("--service", service);
  for (const host of request.hosts ?? []) words.push("--host", host);
  words.push("--out", request.outDir);
  return shellCommand(words);
}
