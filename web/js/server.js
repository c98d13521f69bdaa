// The server's live figures, for a user with `admin`: `stats` (PROTOCOL.md 5.7) answers with
// the very counters the metrics door serves to Prometheus. Asked every two seconds while the
// tab is shown, on a session of its own.

import { $, el, humanSize } from './dom.js';

const EVERY_MS = 2000;

/// The figures shown, in groups: a title and, per row, what it is and how to read it.
const GROUPS = [
  ['Sessions open', [
    ['over TCP', 'ferry_sessions_open', { transport: 'tcp' }],
    ['over the web page', 'ferry_sessions_open', { transport: 'websocket' }],
    ['over IRC', 'ferry_sessions_open', { transport: 'irc' }],
  ]],
  ['Sign-ins', [
    ['with a token', 'ferry_sign_ins_total', { outcome: 'ok' }],
    ['anonymous', 'ferry_sign_ins_total', { outcome: 'anonymous' }],
    ['refused', 'ferry_sign_ins_total', { outcome: 'failed' }],
  ]],
  ['Chat', [
    ['rooms', 'ferry_chat_rooms', {}],
    ['members', 'ferry_chat_members', {}],
    ['deliveries', 'ferry_chat_deliveries_total', {}],
    ['lines skipped', 'ferry_chat_lines_skipped_total', {}],
    ['members dropped', 'ferry_chat_members_dropped_total', {}],
  ]],
  ['Commands and files', [
    ['commands running', 'ferry_exec_running', {}],
    ['transfers (get)', 'ferry_transfer_duration_seconds_count', { direction: 'get' }],
    ['transfers (put)', 'ferry_transfer_duration_seconds_count', { direction: 'put' }],
    ['file bytes in', 'ferry_bytes_total', { service: 'files', direction: 'in' }, humanSize],
    ['file bytes out', 'ferry_bytes_total', { service: 'files', direction: 'out' }, humanSize],
    ['audit entries lost', 'ferry_audit_dropped_total', {}],
  ]],
];

function matches(sample, name, labels) {
  if (sample.name !== name) return false;
  return Object.entries(labels).every(([key, value]) => sample.labels?.[key] === value);
}

export class ServerView {
  constructor(account) {
    this.account = account;
    this.session = null;
    this.timer = null;
    this.busy = false;
  }

  shown() {
    this.refresh();
    this.timer ??= setInterval(() => {
      if ($('#view-server').hidden) return;
      this.refresh();
    }, EVERY_MS);
  }

  async refresh() {
    if (this.busy) return;
    this.busy = true;
    const status = $('#server-status');
    try {
      this.session ??= await this.account.open();
      this.session.send({ type: 'stats' });
      const report = await this.session.expect('stats_report');
      this.render(report.samples);
      status.textContent = `as of ${new Date().toLocaleTimeString()}`;
      status.classList.remove('bad');
    } catch (error) {
      this.session?.close();
      this.session = null;
      status.textContent = `Cannot read the figures: ${error.message}`;
      status.classList.add('bad');
    } finally {
      this.busy = false;
    }
  }

  render(samples) {
    const requests = samples.filter((s) => s.name === 'ferry_requests_total')
      .sort((a, b) => b.value - a.value);
    const groups = GROUPS.map(([title, rows]) => el('section', { class: 'figures' },
      el('h2', {}, title),
      el('table', {}, ...rows.map(([label, name, labels, format]) => {
        const sample = samples.find((s) => matches(s, name, labels));
        const value = sample ? sample.value : 0;
        return el('tr', { dataset: { series: name, labels: JSON.stringify(labels) } },
          el('th', {}, label),
          el('td', { class: 'num' }, format ? format(value) : String(value)));
      }))));
    groups.push(el('section', { class: 'figures' },
      el('h2', {}, 'Requests'),
      el('table', {}, ...requests.map((s) => el('tr', {},
        el('th', {}, `${s.labels.kind} → ${s.labels.outcome}`),
        el('td', { class: 'num' }, String(s.value)))))));
    $('#server-figures').replaceChildren(...groups);
  }

  close() {
    clearInterval(this.timer);
    this.timer = null;
    this.session?.close();
  }
}
