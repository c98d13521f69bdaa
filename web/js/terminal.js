// The terminal view: xterm.js on the exec service with a pseudo-terminal (PROTOCOL.md 5.5),
// running the account's login shell. Keys go as data on channel 0 (Ctrl-C is the byte 0x03,
// which the terminal turns into SIGINT, as on any terminal); size changes as `exec_resize`.

import { $ } from './dom.js';
import { Terminal } from '../vendor/xterm/xterm.mjs';
import { FitAddon } from '../vendor/xterm/addon-fit.mjs';
import { checked } from './wire.js';

const utf8 = new TextEncoder();

export class TerminalView {
  constructor(account) {
    this.account = account;
    this.session = null;
    this.terminal = null;
    $('#terminal-restart').addEventListener('click', () => this.start());
    window.addEventListener('resize', () => this.fit?.fit());
  }

  shown() {
    if (!this.terminal) {
      this.terminal = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000 });
      this.fit = new FitAddon();
      this.terminal.loadAddon(this.fit);
      this.terminal.open($('#terminal'));
      this.terminal.onData((text) => this.session?.sendData(0, utf8.encode(text)));
      this.terminal.onBinary((text) => this.session?.sendData(0, Uint8Array.from(text, (c) => c.charCodeAt(0))));
      this.terminal.onResize(({ rows, cols }) => this.session?.send({ type: 'exec_resize', rows, cols }));
      this.start();
    }
    this.fit.fit();
    this.terminal.focus();
  }

  close() {
    this.session?.close();
  }

  status(text) {
    $('#terminal-status').textContent = text;
  }

  async start() {
    $('#terminal-restart').hidden = true;
    this.fit.fit();
    this.status('starting the shell…');
    let session;
    try {
      session = await this.account.open();
      const { rows, cols } = this.terminal;
      session.send({ type: 'exec', argv: [], shell: true, tty: { term: 'xterm-256color', rows, cols } });
      await session.expect('exec_started');
    } catch (error) {
      session?.close();
      this.ended(`the shell could not start: ${error.message}`);
      return;
    }
    this.session = session;
    this.status('shell running');
    this.terminal.focus();
    try {
      for (;;) {
        const frame = await session.next();
        if (frame.kind === 'data') {
          this.terminal.write(frame.bytes.slice());
          continue;
        }
        const exit = checked(frame.message, 'exec_exit');
        const how = exit.code !== undefined ? `exited with code ${exit.code}` : `ended by signal ${exit.signal}`;
        this.ended(`the shell ${how}`);
        break;
      }
    } catch (error) {
      this.ended(`the connection ended: ${error.message}`);
    }
    this.session = null;
    session.close();
  }

  ended(text) {
    this.status(text);
    this.terminal.write(`\r\n[${text}]\r\n`);
    $('#terminal-restart').hidden = false;
  }
}
