// The page's entry: sign in, then the views the account may use (chat, files, terminal, and
// the server's figures for an admin), each on a session of its own — a ferry session serves one request at a time, and a chat or a shell holds its
// session for as long as it runs.

import { $, setText } from './dom.js';
import { FerryError, Session, serverFacts } from './wire.js';
import { ChatView } from './chat.js';
import { FilesView } from './files.js';
import { TerminalView } from './terminal.js';
import { ServerView } from './server.js';

const REMEMBERED = 'ferry.token';

/// The signed-in account: what it takes to open another session, and what it may do.
class Account {
  constructor(facts, token, welcome) {
    this.facts = facts;
    this.token = token;
    this.welcome = welcome;
  }

  open() {
    return Session.open(this.facts, this.token);
  }

  may(permission) {
    return this.welcome.permissions.includes(permission);
  }
}

let facts = null;
let views = {};
let account = null;

async function start() {
  try {
    facts = await serverFacts();
  } catch (error) {
    setText($('#sign-in-error'), `Cannot reach the server: ${error.message}`);
    return;
  }
  $('#identity').textContent = facts.binding === 'plaintext'
    ? `${facts.server} · plaintext (loopback only)`
    : `${facts.server} · identity ${facts.binding}`;
  $('#sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    signIn($('#token').value.trim(), $('#remember').checked);
  });
  $('#anonymous').addEventListener('click', () => signIn(null, false));
  $('#sign-out').addEventListener('click', signOut);
  for (const tab of document.querySelectorAll('#tabs button')) {
    tab.addEventListener('click', () => show(tab.dataset.view));
  }
  const remembered = localStorage.getItem(REMEMBERED);
  if (remembered) {
    $('#token').value = remembered;
    $('#remember').checked = true;
  }
}

async function signIn(token, remember) {
  const error = $('#sign-in-error');
  error.textContent = '';
  if (token === '') {
    error.textContent = 'Enter a token (NAME:SECRET), or continue without one.';
    return;
  }
  $('#sign-in-button').disabled = true;
  let session;
  try {
    session = await Session.open(facts, token);
  } catch (failure) {
    setText(error, signInFailure(failure));
    return;
  } finally {
    $('#sign-in-button').disabled = false;
  }
  if (remember && token) localStorage.setItem(REMEMBERED, token);
  else localStorage.removeItem(REMEMBERED);
  $('#token').value = '';
  account = new Account(facts, token, session.welcome);
  const name = session.welcome.user ?? 'anonymous';
  setText($('#who'), `${name} · may ${session.welcome.permissions.join(', ') || 'nothing'}`);
  $('#sign-in').hidden = true;
  $('#app').hidden = false;
  $('#sign-out').hidden = false;
  views = {
    chat: account.may('chat') ? new ChatView(account) : null,
    files: account.may('read') ? new FilesView(account, session) : null,
    terminal: account.may('exec') ? new TerminalView(account) : null,
    server: account.may('admin') ? new ServerView(account) : null,
  };
  if (!views.files) session.close();
  for (const [name, view] of Object.entries(views)) $(`#tab-${name}`).hidden = !view;
  const first = Object.keys(views).find((name) => views[name]);
  if (first) show(first);
}

function signInFailure(failure) {
  if (!(failure instanceof FerryError)) return `Sign-in failed: ${failure.message}`;
  switch (failure.code) {
    case 'auth_failed': return 'Sign-in failed: wrong token or unknown user.';
    case 'rate_limited': return `Sign-in refused: ${failure.message}`;
    case 'permission_denied': return 'This server admits no one without a token.';
    default: return `Sign-in failed: ${failure.message}`;
  }
}

function show(name) {
  for (const [other, view] of Object.entries(views)) {
    const selected = other === name;
    $(`#tab-${other}`).setAttribute('aria-selected', String(selected));
    $(`#view-${other}`).hidden = !selected;
    if (selected && view) view.shown();
  }
}

function signOut() {
  for (const view of Object.values(views)) view?.close();
  views = {};
  account = null;
  localStorage.removeItem(REMEMBERED);
  location.reload();
}

start();
