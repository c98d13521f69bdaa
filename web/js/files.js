// The files view: browse the server's root, download (verified against the server's SHA-256
// before the browser keeps anything), upload (hash sent, atomic on the server), mkdir, rm —
// requests of PROTOCOL.md 5.6, one at a time on one session.

import { $, clock, el, humanSize, setText } from './dom.js';
import { sha256 } from '../vendor/noble-hashes/sha2.js';
import { FerryError, checked, toHex } from './wire.js';

/// Downloads at least this large go straight to disk where the browser can (File System
/// Access API); smaller ones are gathered in a Blob, which the browser may keep on disk too.
const STREAM_TO_DISK_FROM = 64 * 1024 * 1024;
/// Uploads read the file this much at a time.
const READ_CHUNK = 1024 * 1024;

function childPath(dir, name) {
  return dir ? `${dir}/${name}` : name;
}

export class FilesView {
  constructor(account, session) {
    this.account = account;
    this.session = session;
    this.queue = Promise.resolve();
    this.dir = '';
    this.entries = [];
    this.sort = { key: 'name', descending: false };
    this.canWrite = account.may('write');
    for (const node of document.querySelectorAll('#view-files .write-only')) node.hidden = !this.canWrite;
    $('#files-up').addEventListener('click', () => this.open(this.dir.split('/').slice(0, -1).join('/')));
    $('#files-refresh').addEventListener('click', () => this.open(this.dir));
    $('#files-mkdir').addEventListener('click', () => this.mkdir());
    $('#files-upload').addEventListener('change', (event) => {
      this.uploadAll([...event.target.files]);
      event.target.value = '';
    });
    for (const th of document.querySelectorAll('#files-table th[data-sort]')) {
      th.addEventListener('click', () => this.sortBy(th.dataset.sort));
    }
    const drop = $('#files-drop');
    drop.addEventListener('dragover', (event) => {
      event.preventDefault();
      drop.classList.add('over');
    });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (event) => {
      event.preventDefault();
      drop.classList.remove('over');
      this.uploadAll([...event.dataTransfer.files]);
    });
    this.loaded = false;
  }

  shown() {
    if (!this.loaded) this.open('');
    this.loaded = true;
  }

  close() {
    this.session?.close();
  }

  /// Runs `work(session)` after every earlier request: a session serves one at a time. A
  /// session that ended is replaced by a new one.
  exclusive(work) {
    const run = this.queue.then(async () => {
      if (!this.session || this.session.ended) this.session = await this.account.open();
      return work(this.session);
    });
    this.queue = run.catch(() => {});
    return run;
  }

  status(text, bad = false) {
    const line = $('#files-status');
    setText(line, text);
    line.classList.toggle('bad', bad);
  }

  async open(dir) {
    try {
      const entries = await this.exclusive((session) => list(session, dir));
      this.dir = dir;
      this.entries = entries;
      setText($('#files-path'), `/${dir}`);
      $('#files-up').disabled = dir === '';
      this.render();
      this.status(`${entries.length} item${entries.length === 1 ? '' : 's'}`);
    } catch (error) {
      this.status(`Cannot list /${dir}: ${error.message}`, true);
    }
  }

  sortBy(key) {
    this.sort = { key, descending: this.sort.key === key ? !this.sort.descending : false };
    this.render();
  }

  render() {
    const { key, descending } = this.sort;
    const value = (entry) => (key === 'name' ? entry.path : key === 'size' ? entry.size : entry.mtime_ns);
    const sorted = [...this.entries].sort((a, b) => {
      const dirs = (b.kind === 'dir') - (a.kind === 'dir');
      if (dirs) return dirs;
      const order = value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : 0;
      return descending ? -order : order;
    });
    for (const th of document.querySelectorAll('#files-table th[data-sort]')) {
      th.classList.toggle('sorted-asc', th.dataset.sort === key && !descending);
      th.classList.toggle('sorted-desc', th.dataset.sort === key && descending);
    }
    $('#files-rows').replaceChildren(...sorted.map((entry) => this.row(entry)));
  }

  row(entry) {
    const path = childPath(this.dir, entry.path);
    const isDir = entry.kind === 'dir';
    const name = isDir
      ? el('a', {
        href: `#/${path.split('/').map(encodeURIComponent).join('/')}`,
        onclick: (event) => {
          event.preventDefault();
          this.open(path);
        },
      }, `${entry.path}/`)
      : el('span', {}, entry.kind === 'symlink' ? `${entry.path} → ${entry.target ?? ''}` : entry.path);
    const actions = el('td', {});
    if (entry.kind === 'file') {
      actions.append(el('button', { type: 'button', class: 'small download', onclick: () => this.download(path, entry) }, 'Download'));
    }
    if (this.canWrite) {
      actions.append(' ', el('button', { type: 'button', class: 'small remove', onclick: () => this.remove(path, entry) }, 'Delete'));
    }
    const modified = new Date(Number(entry.mtime_ns) / 1e6);
    return el('tr', { dataset: { name: entry.path, kind: entry.kind } },
      el('td', {}, name),
      el('td', { class: 'num' }, isDir ? '' : humanSize(entry.size)),
      el('td', {}, clock(modified)),
      actions);
  }

  transfer(label, size) {
    const progress = el('progress', { max: Math.max(size, 1), value: 0 });
    const state = el('span', {}, 'waiting');
    const item = el('li', {}, el('span', {}, label), progress, state);
    $('#transfers').prepend(item);
    const started = performance.now();
    return {
      item,
      moved(bytes) {
        progress.value = bytes;
        const seconds = (performance.now() - started) / 1000;
        state.textContent = `${humanSize(bytes)} of ${humanSize(size)}${seconds > 0.5 ? ` · ${humanSize(bytes / seconds)}/s` : ''}`;
      },
      finished(text, bad = false) {
        if (!bad) progress.value = progress.max;
        setText(state, text);
        state.classList.toggle('bad', bad);
        item.dataset.state = bad ? 'failed' : 'done';
      },
    };
  }

  /// Downloads `path`, hashing as it arrives; only bytes whose SHA-256 equals the server's are
  /// handed to the browser to keep.
  async download(path, entry) {
    const name = path.split('/').pop();
    let disk = null;
    if (entry.size >= STREAM_TO_DISK_FROM && window.showSaveFilePicker) {
      try {
        // Asked first, while the click still counts as the user's gesture.
        const handle = await window.showSaveFilePicker({ suggestedName: name });
        disk = await handle.createWritable();
      } catch {
        return;
      }
    }
    const shown = this.transfer(`↓ ${name}`, entry.size);
    try {
      const parts = await this.exclusive((session) => receive(session, path, disk, shown));
      if (disk) {
        await disk.close();
      } else {
        const url = URL.createObjectURL(new Blob(parts));
        el('a', { href: url, download: name }).click();
        setTimeout(() => URL.revokeObjectURL(url), 60_000);
      }
      shown.finished('verified · saved');
    } catch (error) {
      await disk?.abort().catch(() => {});
      shown.finished(`failed: ${error.message}`, true);
    }
  }

  async uploadAll(files) {
    if (!this.canWrite) {
      this.status('This account may not write files.', true);
    }
    const dir = this.dir;
    let landed = 0;
    for (const file of files) landed += await this.upload(file, dir);
    if (landed && dir === this.dir) await this.open(dir);
  }

  /// Uploads one file; whether it landed.
  async upload(file, dir) {
    const shown = this.transfer(`↑ ${file.name}`, file.size);
    try {
      const done = await this.exclusive((session) => send(session, file, childPath(dir, file.name), shown));
      shown.finished(`verified by the server · ${humanSize(done.size)}`);
      return true;
    } catch (error) {
      shown.finished(`failed: ${error.message}`, true);
      this.status(`Upload of ${file.name} refused: ${error.message}`, true);
      return false;
    }
  }

  async mkdir() {
    const name = prompt('New folder name');
    if (!name) return;
    try {
      await this.exclusive(async (session) => {
        session.send({ type: 'mkdir', path: childPath(this.dir, name) });
        await session.expect('done');
      });
      await this.open(this.dir);
    } catch (error) {
      this.status(`Cannot make ${name}: ${error.message}`, true);
    }
  }

  /// Removes a file, or a folder with everything in it (deepest first: the protocol removes
  /// one empty thing at a time), after the user confirmed.
  async remove(path, entry) {
    try {
      let inside = [];
      if (entry.kind === 'dir') inside = await this.exclusive((session) => list(session, path, true));
      const bytes = inside.reduce((sum, e) => sum + (e.kind === 'file' ? e.size : 0), entry.kind === 'dir' ? 0 : entry.size);
      const what = entry.kind === 'dir'
        ? `the folder ${path} and the ${inside.length} item(s) in it (${humanSize(bytes)})`
        : `${path} (${humanSize(bytes)})`;
      if (!confirm(`Delete ${what}? This cannot be undone.`)) return;
      const depth = (p) => p.split('/').length;
      const order = inside.map((e) => `${path}/${e.path}`).sort((a, b) => depth(b) - depth(a));
      await this.exclusive(async (session) => {
        for (const target of [...order, path]) {
          session.send({ type: 'remove', path: target });
          await session.expect('done');
        }
      });
      this.status(`Deleted ${path}`);
    } catch (error) {
      this.status(`Cannot delete ${path}: ${error.message}`, true);
    }
    await this.open(this.dir);
  }
}

/// `list` of `path`: every entry of `list_entries` until `list_done`.
async function list(session, path, recursive = false) {
  session.send({ type: 'list', path, ...(recursive ? { recursive: true } : {}) });
  const entries = [];
  for (;;) {
    const frame = await session.next();
    if (frame.kind !== 'message') throw new FerryError('unexpected_message', 'data in a listing');
    if (frame.message.type === 'list_done') return entries;
    entries.push(...checked(frame.message, 'list_entries').entries);
  }
}

/// `get` with SHA-256: the bytes, written to `disk` or returned as Blob parts once verified.
async function receive(session, path, disk, shown) {
  session.send({ type: 'get', path, hash: 'sha256' });
  const ready = await session.expect('get_ready');
  const hasher = sha256.create();
  const parts = [];
  let received = 0;
  for (;;) {
    const frame = await session.next();
    if (frame.kind === 'data') {
      hasher.update(frame.bytes);
      if (disk) await disk.write(frame.bytes);
      else parts.push(frame.bytes);
      received += frame.bytes.length;
      shown.moved(received);
      continue;
    }
    const end = checked(frame.message, 'get_end');
    if (received !== ready.size) throw new FerryError('integrity', `got ${received} of ${ready.size} bytes`);
    if (toHex(hasher.digest()) !== end.hash) {
      throw new FerryError('integrity', 'the bytes received do not match the server\'s hash; nothing was saved');
    }
    return parts;
  }
}

/// `put` with SHA-256, resuming where an earlier upload of the same bytes stopped.
async function send(session, file, path, shown) {
  session.send({
    type: 'put', path, size: file.size, mode: 0o644,
    mtime_ns: BigInt(file.lastModified) * 1000000n, hash: 'sha256',
  });
  const ready = await session.expect('put_ready');
  let hasher = sha256.create();
  let offset = 0;
  if (ready.offset > 0 && ready.prefix_hash && ready.offset <= file.size) {
    for (let at = 0; at < ready.offset; at += READ_CHUNK) {
      hasher.update(new Uint8Array(await file.slice(at, Math.min(at + READ_CHUNK, ready.offset)).arrayBuffer()));
    }
    if (toHex(hasher.clone().digest()) === ready.prefix_hash) offset = ready.offset;
    else hasher = sha256.create();
  }
  session.send({ type: 'put_start', offset });
  for (let at = offset; at < file.size; at += READ_CHUNK) {
    const bytes = new Uint8Array(await file.slice(at, at + READ_CHUNK).arrayBuffer());
    hasher.update(bytes);
    session.sendData(0, bytes);
    await session.drained();
    shown.moved(at + bytes.length);
  }
  session.send({ type: 'put_end', hash: toHex(hasher.digest()) });
  return session.expect('put_done');
}
