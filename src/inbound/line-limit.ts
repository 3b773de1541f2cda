import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

/**
 * RFC 5321 §4.5.3.1.4: a command line is at most 512 octets, CRLF included. smtp-server's own cap
 * is 16 KB (room for AUTH blobs) and anything shorter reaches the handlers, so a 600-octet line was
 * answered like a normal command. Mailroom advertises no extension that lengthens a command line
 * (AUTH and DSN are off; SIZE, BODY and SMTPUTF8 fit easily), so a longer line is refused here with
 * `500 5.5.2` and the connection stays usable. Message lines in DATA are not commands: untouched.
 * Applied once, at import, like relay-guard.ts.
 */
export const MAX_COMMAND_LINE = 512;

const proto = SMTPConnection.prototype as any;

if (!proto.__mailroomLineLimit) {
  const original = proto._onCommand;
  proto._onCommand = function (this: any, command: Buffer, callback?: () => void) {
    // The parser hands over the line without its terminator (CRLF, or a bare LF it also accepts).
    const tooLong = command && command.length > MAX_COMMAND_LINE - 2;
    // Lines buffered during a TLS handshake must be dropped silently, early talkers and a shutdown get
    // 421: the original handles those. An AUTH continuation line is not a command.
    if (!tooLong || this._upgrading || this._nextHandler || !this._ready || this._server._closeTimeout) return original.call(this, command, callback);
    const next = callback ?? (() => false);
    // Counted like an unrecognized command, so a client that only sends long lines is cut off at 10.
    this._unrecognizedCommands++;
    if (this._unrecognizedCommands >= 10) return this.send(421, '4.7.0 Error: too many bad commands, closing connection');
    this.send(500, `5.5.2 Error: line too long (limit ${MAX_COMMAND_LINE} octets)`);
    // As smtp-server does after a synchronous reply: resume reading once the reply is flushed.
    setImmediate(() => (this._whenWritable ? this._whenWritable(next) : next()));
  };
  proto.__mailroomLineLimit = true;
}
