// The token proof (PROTOCOL.md 5.1, SCRAM-SHA-256-like) with WebCrypto: the secret stays in the
// page; only the proof crosses the wire.

const utf8 = new TextEncoder();

async function hmac(key, message) {
  const imported = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', imported, message));
}

/// The proof for one challenge, and the signature the server must answer with.
export async function proveToken({ user, secret, clientNonce, serverNonce, salt, binding }) {
  const salted = await hmac(utf8.encode(secret), salt);
  const clientKey = await hmac(salted, utf8.encode('Client Key'));
  const storedKey = new Uint8Array(await crypto.subtle.digest('SHA-256', clientKey));
  const serverKey = await hmac(salted, utf8.encode('Server Key'));
  const authMessage = utf8.encode(`ferry-auth-v1\n${user}\n${clientNonce}\n${serverNonce}\n${binding}`);
  const clientSignature = await hmac(storedKey, authMessage);
  const proof = clientKey.map((byte, i) => byte ^ clientSignature[i]);
  const serverSignature = await hmac(serverKey, authMessage);
  return { proof, serverSignature };
}
