// Compose and reply. The Idempotency-Key is made when the form opens and sent with every submit
// of that form: a double click, or a retry after a network error, sends the message once (the
// server answers the repeat with the original message and Idempotent-Replayed: true).
import { h, dialog, field, announce, showError } from './dom.js';

/**
 * Opens the compose dialog. mode: { inboxId } for a new message, { replyTo: message } for a reply.
 * Resolves with the sent message, or null when closed without sending.
 */
export function compose(ctx, mode) {
  return new Promise((resolve) => {
    const key = `console-${crypto.randomUUID()}`;
    const reply = mode.replyTo ?? null;
    const form = h('form', { class: 'compose', 'aria-label': reply ? 'Reply' : 'New message' },
      reply ? h('p', {}, 'To: ', (reply.reply_to?.[0] ?? reply.from)?.address ?? '') : field('To', 'to', { type: 'text', required: true, placeholder: 'someone@example.com, other@example.com' }),
      reply ? null : field('Subject', 'subject'),
      field('Message', 'text', { type: 'textarea', required: true, rows: 8 }),
      h('p', { class: 'hint' }, h('small', {}, `Idempotency key for this message: ${key}`)));
    let sent = null;
    const send = h('button', { type: 'submit', class: 'primary' }, reply ? 'Send reply' : 'Send');
    form.append(h('div', { class: 'dialog-actions' }, send));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (send.disabled) return;
      send.disabled = true;
      const data = new FormData(form);
      const body = { text: String(data.get('text') ?? '') };
      if (!reply) {
        body.to = String(data.get('to') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
        const subject = String(data.get('subject') ?? '');
        if (subject) body.subject = subject;
      }
      try {
        const path = reply ? `/v1/messages/${encodeURIComponent(reply.id)}/reply` : `/v1/inboxes/${encodeURIComponent(mode.inboxId)}/messages`;
        sent = await ctx.api.post(path, body, { headers: { 'idempotency-key': key } });
        announce(`Sent: ${sent.subject ?? '(no subject)'} (${sent.id})`, 'good');
        d.close();
      } catch (err) {
        showError(err);
        send.disabled = false;
      }
    });
    const d = dialog(reply ? `Reply to ${reply.from?.address ?? ''}` : 'New message', form);
    d.addEventListener('close', () => resolve(sent));
    form.querySelector('input, textarea')?.focus();
  });
}
