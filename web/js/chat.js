// The chat view: one ferry session holding a chat exchange (PROTOCOL.md 5.3). Lines and notices
// are read as they come; requests carry ids and are matched with their answers.

import { $, clock, el, setText } from './dom.js';
import { FerryError } from './wire.js';

const HELP = [
  '/me ACTION      act: shown as “* you ACTION”',
  '/msg NICK TEXT  a direct message to NICK (babyshen, the bot, answers every line)',
  '/query NICK     a conversation with NICK alone',
  '/join ROOM      move to another room',
  '/who            who is in the room',
  '/list           the rooms, how many are in each, their topics',
  '/topic [TEXT]   show the room\'s topic, or set it',
  '/nick NEW       change your nick',
  '/part           leave',
];
/// A line that waits this long for its acknowledgement is being paced by the flood limit.
const PACED_AFTER_MS = 1000;
/// Notices after which the member list is asked for again.
const MEMBERSHIP = / (joined|left|is now known as|was dropped)/;

export class ChatView {
  constructor(account) {
    this.account = account;
    this.session = null;
    this.nextId = 1;
    this.requests = new Map();
    this.joins = [];
    this.pending = [];
    this.place = null;
    $('#chat-nick').value = account.welcome.user ?? `web${Math.floor(100 + Math.random() * 900)}`;
    $('#chat-join-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const nick = $('#chat-nick').value.trim();
      this.join({ room: $('#chat-room').value.trim() }, nick).catch((e) => this.refused(e));
    });
    $('#chat-say-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = $('#chat-input');
      const line = input.value;
      input.value = '';
      if (line.trim()) this.command(line).catch((e) => this.refused(e));
    });
    $('#chat-leave').addEventListener('click', () => this.leave());
    $('#chat-rooms-refresh').addEventListener('click', () => this.rooms().catch((e) => this.refused(e)));
    this.pacing = setInterval(() => this.showPacing(), 250);
  }

  shown() {
    (this.session ? $('#chat-input') : $('#chat-room')).focus();
  }

  close() {
    clearInterval(this.pacing);
    this.session?.close();
  }

  /// Joins `{room}` or `{with}`: opens the session first when there is none. Only the join
  /// form names a nick (the one typed beside it); a `/join` inside a session sends none, so the
  /// server keeps the session's nick — a `/nick` still waiting for its ack must not be undone
  /// by a join sent right after it with the nick the page showed before.
  async join(target, nick = undefined) {
    if (!this.session) {
      this.session = await this.account.open();
      this.read(this.session);
      nick ??= $('#chat-nick').value.trim();
    }
    const joined = new Promise((resolve, reject) => this.joins.push({ resolve, reject }));
    this.session.send({ type: 'chat_join', ...target, ...(nick ? { nick } : {}), history: true });
    await joined;
  }

  /// Reads the session until it ends, showing lines and answering waiters.
  async read(session) {
    try {
      for (;;) {
        const frame = await session.next();
        if (frame.kind === 'message') this.arrived(frame.message);
      }
    } catch (error) {
      if (session === this.session) this.ended(error);
    }
  }

  arrived(message) {
    switch (message.type) {
      case 'chat_joined': return this.joined(message);
      case 'chat_message': return this.line(message);
      case 'chat_notice': return this.notice(message);
      case 'chat_ack':
      case 'chat_members':
      case 'chat_rooms':
        return this.answer(message.id, message);
      case 'chat_left': return this.answer('leave', message);
      case 'error': return this.error(message);
      case 'goodbye':
        this.show(el('li', { class: 'notice' }, `The server ended the session: ${message.reason}`));
        return undefined;
      default: return undefined;
    }
  }

  joined(message) {
    this.joins.shift()?.resolve(message);
    this.place = message.room ? { room: message.room } : { with: message.with };
    $('#chat-nick').value = message.nick;
    setText($('#chat-place'), message.room
      ? `#${message.room} as ${message.nick}`
      : `Conversation with ${message.with} as ${message.nick}`);
    this.note(message.room ? `You joined #${message.room}` : `You are talking with ${message.with}`);
    if (message.topic) this.note(`Topic: ${message.topic}`);
    this.members(message.members);
    // History lines still to come; after the last, a marker says live lines follow.
    this.replayLeft = message.replayed ?? 0;
    for (const id of ['#chat-input', '#chat-send', '#chat-leave']) $(id).disabled = false;
    $('#chat-input').focus();
    this.rooms().catch(() => {});
  }

  answer(id, message) {
    const waiter = this.requests.get(id);
    this.requests.delete(id);
    waiter?.resolve(message);
  }

  error(message) {
    const failure = new FerryError(message.code, message.message);
    if (message.id !== undefined && this.requests.has(message.id)) {
      const waiter = this.requests.get(message.id);
      this.requests.delete(message.id);
      waiter.reject(failure);
    } else if (this.joins.length) {
      // A refused join has no id: joins are answered in order (PROTOCOL.md 5.3).
      this.joins.shift().reject(failure);
    } else {
      this.refused(failure);
    }
  }

  ended(error) {
    this.session = null;
    for (const waiter of [...this.requests.values(), ...this.joins]) waiter.reject(error);
    this.requests.clear();
    this.joins = [];
    this.pending = [];
    this.place = null;
    if (error.code !== 'closed' || error.message !== 'signed out') {
      this.show(el('li', { class: 'notice' }, `Disconnected: ${error.message}`));
    }
    $('#chat-place').textContent = 'Not in a room';
    for (const id of ['#chat-input', '#chat-send', '#chat-leave']) $(id).disabled = true;
    $('#chat-members').replaceChildren();
  }

  /// Sends a request with a fresh id and resolves with its answer.
  request(message) {
    if (!this.session) return Promise.reject(new FerryError('closed', 'join a room first'));
    const id = this.nextId++;
    const answered = new Promise((resolve, reject) => this.requests.set(id, { resolve, reject }));
    this.session.send({ ...message, id });
    return answered;
  }

  /// A line typed by the user: a command or a line for the room.
  async command(line) {
    if (!line.startsWith('/')) return this.say(line, false);
    const [name, ...words] = line.split(' ');
    const rest = words.join(' ');
    switch (name) {
      case '/help': for (const text of HELP) this.note(text); return undefined;
      case '/me': return this.say(rest, true);
      case '/msg': {
        const cut = rest.indexOf(' ');
        if (cut <= 0) return this.note('usage: /msg NICK TEXT');
        return this.direct(rest.slice(0, cut), rest.slice(cut + 1));
      }
      case '/query': return this.join({ with: rest.trim() });
      case '/join': return this.join({ room: rest.trim().replace(/^#/, '') });
      case '/who': return this.members((await this.request({ type: 'chat_who' })).nicks);
      case '/list': {
        const rooms = await this.rooms();
        for (const room of rooms) {
          this.note(`#${room.room} (${room.members})${room.topic ? `: ${room.topic}` : ''}`);
        }
        return undefined;
      }
      case '/topic': {
        if (!rest) {
          const [room] = (await this.request({ type: 'chat_topic' })).rooms;
          return this.note(room?.topic ? `Topic: ${room.topic}` : 'No topic is set');
        }
        return this.request({ type: 'chat_topic', topic: rest });
      }
      case '/nick': {
        const nick = rest.trim();
        await this.request({ type: 'chat_nick', nick });
        $('#chat-nick').value = nick;
        setText($('#chat-place'), $('#chat-place').textContent.replace(/ as .*$/, ` as ${nick}`));
        return undefined;
      }
      case '/part': case '/quit': return this.leave();
      default: return this.note(`unknown command ${name}; /help lists them`);
    }
  }

  /// A line (or action) for the room or the conversation, shown at once and confirmed by its ack.
  async say(text, action) {
    const nick = $('#chat-nick').value;
    const shown = this.show(this.render({ from: nick, text, action }, 'pending'));
    const waiting = { sent: performance.now() };
    this.pending.push(waiting);
    try {
      await this.request({ type: 'chat_say', text, ...(action ? { action: true } : {}) });
      shown.classList.remove('pending');
    } catch (error) {
      // The refused line goes back to the input to be edited; the log keeps only why.
      shown.replaceWith(this.refusal(`not sent: ${error.message}`));
      const input = $('#chat-input');
      if (!input.value) input.value = action ? `/me ${text}` : text;
    } finally {
      this.pending.splice(this.pending.indexOf(waiting), 1);
    }
  }

  async direct(to, text) {
    const shown = this.show(el('li', { class: 'direct pending' },
      el('span', { class: 'time' }, clock()), el('span', { class: 'from' }, `→ ${to}`), ` ${text}`));
    try {
      await this.request({ type: 'chat_direct', to, text });
      shown.classList.remove('pending');
    } catch (error) {
      shown.replaceWith(this.refusal(`not sent to ${to}: ${error.message}`));
    }
  }

  async rooms() {
    const { rooms } = await this.request({ type: 'chat_list' });
    $('#chat-rooms').replaceChildren(...rooms.map((room) => el('li', {
      class: room.room === this.place?.room ? 'current' : '',
      title: room.topic ?? '',
      onclick: () => this.join({ room: room.room }).catch((e) => this.refused(e)),
    }, `#${room.room} (${room.members})`)));
    return rooms;
  }

  async leave() {
    const session = this.session;
    if (!session) return;
    const left = new Promise((resolve, reject) => this.requests.set('leave', { resolve, reject }));
    session.send({ type: 'chat_leave' });
    await left.catch(() => {});
    this.session = null;
    session.close();
    this.ended(new FerryError('closed', 'signed out'));
    this.note('You left the chat');
  }

  members(nicks) {
    $('#chat-members').replaceChildren(...nicks.map((nick) => el('li', {
      title: `Click to write to ${nick}`,
      onclick: () => {
        $('#chat-input').value = `/msg ${nick} `;
        $('#chat-input').focus();
      },
    }, nick)));
  }

  line(message) {
    this.show(this.render(message, message.history ? 'history' : ''));
    if (message.history && this.replayLeft > 0 && --this.replayLeft === 0) {
      this.show(el('li', { class: 'marker' }, 'history above, live from here'));
    }
  }

  render(message, extra) {
    const direct = message.to !== undefined && message.room === undefined;
    const classes = [direct ? 'direct' : '', extra].filter(Boolean).join(' ');
    const from = message.action ? `* ${message.from}` : direct ? `${message.from} → you` : `<${message.from}>`;
    // A history line carries when it was said; a live one is shown as it arrives.
    const said = message.at ? new Date(message.at) : null;
    const time = said && !Number.isNaN(said.getTime())
      ? el('span', { class: 'time', title: message.at }, clock(said))
      : el('span', { class: 'time' }, clock());
    return el('li', { class: classes }, time, el('span', { class: 'from' }, from), ` ${message.text}`);
  }

  /// A line of the page's own (help, results of commands), not from the server's notices.
  note(text) {
    this.show(el('li', { class: 'notice' }, `— ${text}`));
  }

  notice(message) {
    this.note(message.text);
    if (MEMBERSHIP.test(message.text) && this.session) {
      this.request({ type: 'chat_who' }).then((answer) => this.members(answer.nicks), () => {});
      this.rooms().catch(() => {});
    }
  }

  refused(error) {
    this.show(this.refusal(error.message));
  }

  refusal(text) {
    return el('li', { class: 'refused' }, el('span', { class: 'time' }, clock()), `⚠ ${text}`);
  }

  show(item) {
    const log = $('#chat-log');
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(item);
    if (atEnd) log.scrollTop = log.scrollHeight;
    return item;
  }

  showPacing() {
    const oldest = this.pending[0];
    const status = $('#chat-status');
    if (oldest && performance.now() - oldest.sent > PACED_AFTER_MS) {
      status.textContent = `The server's flood limit is pacing your lines: ${this.pending.length} waiting to be sent.`;
    } else {
      status.textContent = '';
    }
  }
}
