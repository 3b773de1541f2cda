/**
 * Sendmail-style reports cut a multi-line SMTP reply to its first line in the Diagnostic-Code
 * ("550-5.7.1 Unauthenticated email from x is not accepted due to domain's") while the session
 * transcript in the text part has all of it ("<<< 550-5.7.1 ...", "<<< 550 5.7.1 ..."). This
 * finds the whole reply so the reason is read from the full sentence.
 */
export function completeReply(diagnostic: string, reportText: string): string {
  const first = /^\s*([245]\d\d)-/.exec(diagnostic);
  if (!first) return diagnostic;
  const code = first[1];
  const probe = diagnostic.trim().slice(0, 40);
  const lines = reportText.split('\n');
  const bare = (l: string) => l.replace(/^\s*<<<\s*/, '').trim();
  const at = lines.findIndex((l) => bare(l).startsWith(probe));
  if (at < 0) return diagnostic;
  const out: string[] = [];
  for (let i = at; i < lines.length; i++) {
    const l = bare(lines[i]);
    if (!l.startsWith(code)) break;
    out.push(l);
    if (l.startsWith(`${code} `)) break; // the last line of a multi-line reply has a space after the code
  }
  return out.length > 1 ? out.join(' ') : diagnostic;
}
