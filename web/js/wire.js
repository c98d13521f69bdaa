// One ferry session over the web door's WebSocket (PROTOCOL.md 3.1): each binary WebSocket
// message carries exactly one ferry frame (section 4), each way. Above this file nothing sees
// a frame: the page sends messages and data and reads them back in order.

import { proveToken } from './auth.js';

const MESSAGE = 0x01;
const DATA = 0x02;
/// Before `welcome` the server takes frames of at most this many bytes (section 4).
const HANDSHAKE_MAX_FRAME = 16384;
/// Data frames the page sends carry at most this many bytes, within the server's `max_frame`.
const DATA_CHUNK = 256 * 1024;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

/// An `error` from the server, or the session's end, with the protocol's code.
export class FerryError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/// JSON with integers beyond 2^53 (mtime_ns) sent exactly: pass them as BigInt.
function encodeJson(message) {
  const marked = JSON.stringify(message, (_key, value) =>
    typeof value === 'bigint' ? `@@bigint:${value}@@` : value);
  return marked.replace(/"@@bigint:(-?\d+)@@"/g, '$1');
}

/// Standard base64 with padding, as the protocol uses it.
export function toBase64(bytes) {
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

export function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/// What `/ferry.json` says: the server's name and the binding a proof needs.
export async function serverFacts() {
  const response = await fetch('ferry.json', { cache: 'no-store' });
  if (!response.ok) throw new FerryError('internal', `the server's facts: HTTP ${response.status}`);
  return response.json();
}

/// A signed-in session. Frames arrive in order; `next()` takes them one at a time.
export class Session {
  constructor(socket) {
    this.socket = socket;
    this.arrived = [];
    this.waiting = [];
    this.ended = null;
    this.maxFrame = HANDSHAKE_MAX_FRAME;
    this.welcome = null;
    socket.binaryType = 'arraybuffer';
    socket.onmessage = (event) => this.#arrive(event.data);
    socket.onclose = (event) => this.#end(new FerryError('closed',
      event.reason ? `the connection closed: ${event.reason}` : 'the connection to the server closed'));
    socket.onerror = () => this.#end(new FerryError('closed', 'the connection to the server failed'));
  }

  /// Opens a session and signs in: with `token` (`NAME:SECRET`) by the token proof, without
  /// one anonymously. Resolves once `welcome` arrived (and, signed in, was checked).
  static async open(facts, token) {
    const url = new URL('ws', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(url);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new FerryError('closed', 'cannot reach the server'));
    });
    const session = new Session(socket);
    try {
      await session.#signIn(facts, token);
    } catch (error) {
      session.close();
      throw error;
    }
    return session;
  }

  async #signIn(facts, token) {
    const client = 'ferry-web/1';
    if (!token) {
      this.send({ type: 'hello', client });
    } else {
      const cut = token.lastIndexOf(':');
      if (cut <= 0) throw new FerryError('auth_failed', 'a token looks like NAME:SECRET');
      const user = token.slice(0, cut);
      const secret = token.slice(cut + 1);
      const clientNonce = toBase64(crypto.getRandomValues(new Uint8Array(24)));
      this.send({ type: 'hello', client, user, nonce: clientNonce });
      const challenge = await this.expect('challenge');
      const { proof, serverSignature } = await proveToken({
        user, secret, clientNonce, serverNonce: challenge.nonce,
        salt: fromBase64(challenge.salt), binding: facts.binding,
      });
      this.send({ type: 'proof', proof: toBase64(proof) });
      const welcome = await this.expect('welcome');
      if (welcome.signature !== toBase64(serverSignature)) {
        throw new FerryError('auth_failed', 'the server could not prove it holds your credential');
      }
      this.#welcomed(welcome);
      return;
    }
    this.#welcomed(await this.expect('welcome'));
  }

  #welcomed(welcome) {
    this.welcome = welcome;
    this.maxFrame = welcome.max_frame;
  }

  /// The session's permissions (`chat`, `read`, `write`, `exec`).
  may(permission) {
    return this.welcome.permissions.includes(permission);
  }

  #arrive(buffer) {
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength < 5) {
      this.#end(new FerryError('bad_frame', 'the server sent something that is not a frame'));
      return;
    }
    const view = new DataView(buffer);
    const length = view.getUint32(0);
    const kind = view.getUint8(4);
    let frame;
    try {
      if (length !== buffer.byteLength - 4) throw new Error('length');
      if (kind === MESSAGE) {
        frame = { kind: 'message', message: JSON.parse(fromUtf8.decode(new Uint8Array(buffer, 5))) };
      } else if (kind === DATA && buffer.byteLength >= 6) {
        frame = { kind: 'data', channel: view.getUint8(5), bytes: new Uint8Array(buffer, 6) };
      } else {
        throw new Error('kind');
      }
    } catch {
      this.#end(new FerryError('bad_frame', 'the server sent a frame this page cannot read'));
      return;
    }
    const waiter = this.waiting.shift();
    if (waiter) waiter.resolve(frame);
    else this.arrived.push(frame);
  }

  #end(error) {
    if (this.ended) return;
    this.ended = error;
    for (const waiter of this.waiting.splice(0)) waiter.reject(error);
    try { this.socket.close(); } catch { /* already closed */ }
  }

  /// The next frame, in order.
  next() {
    const frame = this.arrived.shift();
    if (frame) return Promise.resolve(frame);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /// The next message, which must be `type`: an `error` or `goodbye` becomes a FerryError.
  async expect(type) {
    const frame = await this.next();
    if (frame.kind !== 'message') throw new FerryError('unexpected_message', `expected ${type}, got data`);
    return checked(frame.message, type);
  }

  send(message) {
    this.#frame(MESSAGE, utf8.encode(encodeJson(message)));
  }

  sendData(channel, bytes) {
    const chunk = this.dataChunk();
    for (let at = 0; at < bytes.length; at += chunk) {
      const part = bytes.subarray(at, at + chunk);
      const body = new Uint8Array(1 + part.length);
      body[0] = channel;
      body.set(part, 1);
      this.#frame(DATA, body);
    }
  }

  /// The most bytes one data frame of this page carries.
  dataChunk() {
    return Math.min(DATA_CHUNK, this.maxFrame - 2);
  }

  #frame(kind, body) {
    if (this.ended) throw this.ended;
    const frame = new Uint8Array(5 + body.length);
    new DataView(frame.buffer).setUint32(0, 1 + body.length);
    frame[4] = kind;
    frame.set(body, 5);
    this.socket.send(frame);
  }

  /// Resolves once the browser holds at most `limit` unsent bytes: the WebSocket API has no
  /// back-pressure of its own, so a sender waits here between chunks and memory stays bounded.
  async drained(limit = 4 * 1024 * 1024) {
    while (this.socket.bufferedAmount > limit) {
      if (this.ended) throw this.ended;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  close() {
    this.#end(new FerryError('closed', 'signed out'));
  }
}

/// `message` when it is `type`; an `error` or `goodbye` becomes a FerryError.
export function checked(message, type) {
  if (message.type === type) return message;
  if (message.type === 'error') throw new FerryError(message.code, message.message);
  if (message.type === 'goodbye') throw new FerryError('goodbye', `the server ended the session: ${message.reason}`);
  throw new FerryError('unexpected_message', `expected ${type}, got ${message.type}`);
}
