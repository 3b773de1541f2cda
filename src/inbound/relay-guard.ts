import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

/**
 * smtp-server rejects a quoted local part that contains "@" (`RCPT TO:<"x@ext.com"@ours>`) as a
 * syntax error (501) before the application sees it. The message is refused either way, but an
 * open-relay probe should read the verdict it tests for: this is a foreign destination, 550 5.7.1.
 * So RCPT commands whose address has a quoted local part are answered here, ahead of the parser.
 * Applied once, at import; it changes nothing for any other command or address form.
 */
const QUOTED_LOCAL_PART = /^\s*RCPT\s+TO\s*:\s*<\s*(?:@[^:]*:)?"/i;
const proto = SMTPConnection.prototype as any;

if (!proto.__mailroomRelayGuard) {
  const original = proto.handler_RCPT;
  proto.handler_RCPT = function (this: any, command: Buffer | string, callback: () => void) {
    if (QUOTED_LOCAL_PART.test(String(command))) {
      if (!this.session?.envelope?.mailFrom) {
        this.send(503, '5.5.1 Error: need MAIL command');
      } else {
        this.send(550, '5.7.1 Relaying denied: quoted local parts are not accepted here');
      }
      return callback();
    }
    return original.call(this, command, callback);
  };
  proto.__mailroomRelayGuard = true;
}
