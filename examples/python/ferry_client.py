#!/usr/bin/env python3
"""A ferry client using only Python's standard library, written from PROTOCOL.md alone.

It is the proof that the protocol is speakable from any language: TLS 1.3 with trust-on-first-use
pinning, the token proof (SCRAM-like, HMAC-SHA-256), and requests.

    python3 ferry_client.py [--server HOST:PORT] [--token NAME:SECRET] [--plaintext]
                            [--home DIR] COMMAND
    COMMAND: ping [-c N]
             chat (--room ROOM | --with NICK) [--nick NICK]   (lines from stdin)
             exec -- CMD [ARGS...]          (stdin forwarded; exits with the remote status)
             get REMOTE LOCAL | put LOCAL REMOTE                (verified with SHA-256)

Exit status: 0 on success, 1 on any failure (one line on stderr).
"""

import argparse
import base64
import select
import hashlib
import hmac
import json
import os
import secrets
import socket
import ssl
import struct
import sys
import time

PROTOCOL_VERSION = 1
KIND_MESSAGE = 0x01
KIND_DATA = 0x02
HANDSHAKE_MAX_FRAME = 65536


class FerryError(Exception):
    """A failure to show the user as one line."""


class Connection:
    """Frames over a socket (TLS or plain): section 4 of PROTOCOL.md."""

    def __init__(self, sock, server):
        self.sock = sock
        self.server = server
        self.max_frame = HANDSHAKE_MAX_FRAME
        self.fingerprint = None

    def _recv_exact(self, n):
        chunks = []
        while n:
            chunk = self.sock.recv(min(n, 1 << 20))
            if not chunk:
                raise FerryError(f"{self.server} closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def send_data(self, channel, payload):
        """One data frame (section 4): raw bytes, never encoded as text."""
        self.sock.sendall(struct.pack(">IBB", len(payload) + 2, KIND_DATA, channel) + payload)

    def max_payload(self):
        return self.max_frame - 2

    def send_message(self, message):
        body = json.dumps(message, separators=(",", ":")).encode()
        if len(body) + 1 > self.max_frame:
            raise FerryError("message too large for the server")
        self.sock.sendall(struct.pack(">IB", len(body) + 1, KIND_MESSAGE) + body)

    def read_frame(self):
        (length,) = struct.unpack(">I", self._recv_exact(4))
        if length == 0 or length > max(self.max_frame, HANDSHAKE_MAX_FRAME):
            raise FerryError(f"invalid frame length {length}")
        body = self._recv_exact(length)
        return body[0], body[1:]

    def read_message(self):
        kind, body = self.read_frame()
        if kind != KIND_MESSAGE:
            raise FerryError(f"expected a message frame, got kind {kind}")
        message = json.loads(body)
        if message.get("type") == "error":
            raise FerryError(message.get("message", "server error"))
        if message.get("type") == "goodbye":
            raise FerryError(f"server closed the session: {message.get('reason')}")
        return message

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def known_servers_path(home):
    return os.path.join(home, "known_servers")


def check_pin(home, server, fingerprint):
    """Trust on first use (PROTOCOL.md section 3). Returns True when newly pinned."""
    path = known_servers_path(home)
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == server:
                    if parts[1] != fingerprint:
                        raise FerryError(
                            f"SERVER IDENTITY CHANGED for {server}: it presented {fingerprint}, "
                            f"but {parts[1]} is pinned in {path}"
                        )
                    return False
    except FileNotFoundError:
        pass
    os.makedirs(home, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{server} {fingerprint}\n")
    return True


def connect(server, plaintext, home):
    """Preamble exchange, then TLS with pinning (PROTOCOL.md sections 2 and 3)."""
    host, _, port = server.rpartition(":")
    if not host or not port.isdigit():
        raise FerryError(f"invalid server address '{server}': expected HOST:PORT")
    try:
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=15)
    except OSError as e:
        raise FerryError(f"cannot connect to {server}: {e.strerror or e}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    mode = b"P" if plaintext else b"T"
    sock.sendall(b"FERRY" + bytes([PROTOCOL_VERSION]) + mode + b"\x00")
    answer = b""
    while len(answer) < 8:
        chunk = sock.recv(8 - len(answer))
        if not chunk:
            raise FerryError(f"{server} is not a ferry server")
        answer += chunk
    if answer[:5] != b"FERRY":
        raise FerryError(f"{server} is not a ferry server")
    conn = Connection(sock, server)
    if answer[6:7] == b"E":
        try:
            conn.read_message()
        except FerryError as e:
            raise FerryError(f"{server} refused the connection: {e}") from None
        raise FerryError(f"{server} refused the connection")
    if answer[5] != PROTOCOL_VERSION or answer[6:7] != mode:
        raise FerryError(f"{server} answered an unexpected preamble {answer!r}")
    if plaintext:
        return conn
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # No CA chain: the certificate is pinned below. The handshake signature is still verified.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock = context.wrap_socket(sock, server_hostname=host.strip("[]"))
    der = sock.getpeercert(binary_form=True)
    fingerprint = "sha256:" + hashlib.sha256(der).hexdigest()
    if check_pin(home, server, fingerprint):
        print(f"ferry_client: pinned the identity of {server} on first use: {fingerprint}",
              file=sys.stderr)
    conn = Connection(sock, server)
    conn.fingerprint = fingerprint
    return conn


def _hmac(key, message):
    return hmac.new(key, message, hashlib.sha256).digest()


def handshake(conn, token):
    """hello / challenge / proof / welcome (PROTOCOL.md section 5.1)."""
    if token is None:
        conn.send_message({"type": "hello", "client": "ferry_client.py"})
        welcome = conn.read_message()
    else:
        user, sep, secret = token.rpartition(":")
        if not sep or not user or not secret:
            raise FerryError("a token has the form NAME:SECRET")
        client_nonce = base64.b64encode(secrets.token_bytes(24)).decode()
        conn.send_message({"type": "hello", "client": "ferry_client.py",
                           "user": user, "nonce": client_nonce})
        challenge = conn.read_message()
        if challenge.get("type") != "challenge":
            raise FerryError(f"expected a challenge, got {challenge.get('type')}")
        salt = base64.b64decode(challenge["salt"])
        salted = _hmac(secret.encode(), salt)
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        server_key = _hmac(salted, b"Server Key")
        binding = conn.fingerprint or "plaintext"
        auth_message = "\n".join(["ferry-auth-v1", user, client_nonce,
                                  challenge["nonce"], binding]).encode()
        signature = _hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        conn.send_message({"type": "proof", "proof": base64.b64encode(proof).decode()})
        welcome = conn.read_message()
        expected = _hmac(server_key, auth_message)
        got = base64.b64decode(welcome.get("signature", ""))
        if not hmac.compare_digest(expected, got):
            raise FerryError("the server's signature does not match its credential")
    if welcome.get("type") != "welcome":
        raise FerryError(f"expected welcome, got {welcome.get('type')}")
    conn.max_frame = int(welcome["max_frame"])
    return welcome


def cmd_ping(conn, welcome, args):
    user = welcome.get("user") or "anonymous"
    print(f"connected to {conn.server} as {user}, may {','.join(welcome['permissions']) or 'nothing'}")
    rtts = []
    for seq in range(1, args.count + 1):
        start = time.perf_counter()
        conn.send_message({"type": "ping", "seq": seq})
        reply = conn.read_message()
        if reply.get("type") != "pong" or reply.get("seq") != seq:
            raise FerryError(f"unexpected reply {reply}")
        rtt = (time.perf_counter() - start) * 1000
        rtts.append(rtt)
        print(f"pong seq={seq} time={rtt:.3f} ms")
    rtts.sort()
    print(f"{len(rtts)} pongs, rtt min/median/max = "
          f"{rtts[0]:.3f}/{rtts[len(rtts) // 2]:.3f}/{rtts[-1]:.3f} ms")


def render(message):
    """One incoming chat message as a line, in ferry's own format."""
    place = f"[{message['room']}]" if message.get("room") else "[direct]"
    if message["type"] == "chat_message":
        earlier = " (earlier)" if message.get("history") else ""
        if message.get("action"):
            return f"{place}{earlier} * {message['from']} {message['text']}"
        return f"{place}{earlier} {message['from']}: {message['text']}"
    return f"{place} * {message['text']}"


def cmd_chat(conn, welcome, args):
    """Joins, sends each stdin line, and waits for each line's ack (PROTOCOL.md section 5.3)."""
    join = {"type": "chat_join", "nick": args.nick, "history": True}
    if args.with_nick:
        join["with"] = args.with_nick
    else:
        join["room"] = args.room
    conn.send_message(join)

    def pump(until):
        """Prints incoming lines until a message satisfies `until`; returns it."""
        while True:
            message = conn.read_message()
            if message["type"] in ("chat_message", "chat_notice"):
                print(render(message), flush=True)
            if until(message):
                return message

    joined = pump(lambda m: m["type"] == "chat_joined")
    print(f"ferry_client: joined as {joined['nick']}; here: {', '.join(joined['members'])}",
          file=sys.stderr)
    for seq, line in enumerate(sys.stdin, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if line in ("q", "/quit"):
            break
        conn.send_message({"type": "chat_say", "id": seq, "text": line})
        pump(lambda m, seq=seq: m["type"] == "chat_ack" and m["id"] == seq)
    conn.send_message({"type": "chat_leave"})
    pump(lambda m: m["type"] == "chat_left")


def cmd_exec(conn, welcome, args):
    """Runs a command (section 5.5): stdout and stderr apart, stdin forwarded, remote status."""
    conn.send_message({"type": "exec", "argv": args.argv})
    started = conn.read_message()
    if started.get("type") != "exec_started":
        raise FerryError(f"expected exec_started, got {started.get('type')}")
    stdin_open = True
    raw = conn.sock
    while True:
        # TLS may hold decrypted bytes that select() cannot see: read those first.
        pending = isinstance(raw, ssl.SSLSocket) and raw.pending() > 0
        readable = [raw] if pending else select.select(
            [raw] + ([sys.stdin] if stdin_open else []), [], [])[0]
        if sys.stdin in readable:
            chunk = os.read(sys.stdin.fileno(), 65536)
            if chunk:
                conn.send_data(0, chunk)
            else:
                stdin_open = False
                conn.send_message({"type": "exec_eof"})
        if raw in readable:
            kind, body = conn.read_frame()
            if kind == KIND_DATA:
                out = sys.stdout if body[0] == 0 else sys.stderr
                out.buffer.write(body[1:])
                out.flush()
                continue
            message = json.loads(body)
            if message.get("type") == "exec_exit":
                if message.get("timed_out"):
                    return 124
                if message.get("code") is not None:
                    return message["code"]
                return 128 + message.get("signal", 127)
            if message.get("type") == "error":
                raise FerryError(message.get("message"))


def file_digest(path, limit=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = limit
        while left is None or left > 0:
            chunk = f.read(1 << 20 if left is None else min(1 << 20, left))
            if not chunk:
                break
            h.update(chunk)
            if left is not None:
                left -= len(chunk)
    return h


def partial_name(name):
    """The partial file's name for NAME (PROTOCOL.md 5.6): .NAME.ferry-part, or, past 255
    bytes, .PREFIX~HASH.ferry-part with HASH the first 16 hex digits of SHA-256(NAME)."""
    plain = "." + name + ".ferry-part"
    if len(plain.encode()) <= 255:
        return plain
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    room = 255 - 1 - 1 - len(digest) - len(".ferry-part")
    prefix = name.encode()[:room].decode("utf-8", errors="ignore")
    return "." + prefix + "~" + digest + ".ferry-part"


def cmd_get(conn, welcome, args):
    """Downloads with SHA-256 verification into a partial, renamed only when it matches."""
    partial = os.path.join(os.path.dirname(os.path.abspath(args.local)),
                           partial_name(os.path.basename(args.local)))
    held = os.path.getsize(partial) if os.path.exists(partial) else 0
    request = {"type": "get", "path": args.remote, "hash": "sha256"}
    if held:
        request.update(offset=held, prefix_hash=file_digest(partial, held).hexdigest())
    conn.send_message(request)
    ready = conn.read_message()
    offset, size = ready["offset"], ready["size"]
    h = file_digest(partial, offset) if offset else hashlib.sha256()
    if offset:
        print(f"ferry_client: resuming at {offset} bytes", file=sys.stderr)
    with open(partial, "r+b" if offset else "wb") as f:
        f.seek(offset)
        f.truncate()
        left = size - offset
        while left > 0:
            kind, body = conn.read_frame()
            if kind != KIND_DATA:
                raise FerryError(json.loads(body).get("message", "transfer failed"))
            data = body[1:]
            f.write(data)
            h.update(data)
            left -= len(data)
    end = conn.read_message()
    if end["hash"] != h.hexdigest():
        os.remove(partial)
        raise FerryError(f"{args.remote} arrived corrupted; nothing was kept")
    os.chmod(partial, ready["mode"])
    os.utime(partial, ns=(ready["mtime_ns"], ready["mtime_ns"]))
    os.replace(partial, args.local)
    print(f"{args.local}: {size} bytes, sha256 {end['hash']}")


def cmd_put(conn, welcome, args):
    """Uploads with SHA-256 verification, resuming after the server's matching prefix."""
    st = os.stat(args.local)
    conn.send_message({"type": "put", "path": args.remote, "size": st.st_size,
                       "mode": st.st_mode & 0o7777, "mtime_ns": st.st_mtime_ns, "hash": "sha256"})
    ready = conn.read_message()
    offset = ready["offset"]
    if offset and ready.get("prefix_hash") != file_digest(args.local, offset).hexdigest():
        offset = 0
    if offset:
        print(f"ferry_client: resuming at {offset} bytes", file=sys.stderr)
    conn.send_message({"type": "put_start", "offset": offset})
    h = file_digest(args.local, offset) if offset else hashlib.sha256()
    with open(args.local, "rb") as f:
        f.seek(offset)
        while True:
            chunk = f.read(min(1 << 20, conn.max_payload()))
            if not chunk:
                break
            h.update(chunk)
            conn.send_data(0, chunk)
    conn.send_message({"type": "put_end", "hash": h.hexdigest()})
    done = conn.read_message()
    if done.get("type") != "put_done" or done["hash"] != h.hexdigest():
        raise FerryError(f"unexpected answer {done}")
    print(f"{args.remote}: {done['size']} bytes, sha256 {done['hash']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("FERRY_SERVER", "127.0.0.1:9999"))
    parser.add_argument("--token", default=os.environ.get("FERRY_TOKEN"))
    parser.add_argument("--plaintext", action="store_true")
    parser.add_argument("--home", default=os.environ.get("FERRY_HOME")
                        or os.path.join(os.path.expanduser("~"), ".config", "ferry"))
    sub = parser.add_subparsers(dest="command", required=True)
    ping = sub.add_parser("ping", help="round trips")
    ping.add_argument("-c", "--count", type=int, default=4)
    chat = sub.add_parser("chat", help="chat: stdin lines to a room or a nick")
    target = chat.add_mutually_exclusive_group(required=True)
    target.add_argument("--room")
    target.add_argument("--with", dest="with_nick")
    chat.add_argument("--nick", default=os.environ.get("USER") or "guest")
    run = sub.add_parser("exec", help="run a command: exec -- CMD [ARGS...]")
    run.add_argument("argv", nargs=argparse.REMAINDER)
    get = sub.add_parser("get", help="download a file, verified")
    get.add_argument("remote")
    get.add_argument("local")
    put = sub.add_parser("put", help="upload a file, verified")
    put.add_argument("local")
    put.add_argument("remote")
    args = parser.parse_args(argv)
    if args.command == "exec":
        if args.argv[:1] == ["--"]:
            args.argv = args.argv[1:]
        if not args.argv:
            parser.error("exec needs a command")

    conn = None
    try:
        conn = connect(args.server, args.plaintext, args.home)
        welcome = handshake(conn, args.token or None)
        commands = {"ping": cmd_ping, "chat": cmd_chat, "exec": cmd_exec,
                    "get": cmd_get, "put": cmd_put}
        status = commands[args.command](conn, welcome, args)
        return status if isinstance(status, int) else 0
    except (FerryError, OSError, ssl.SSLError, ValueError, KeyError) as e:
        print(f"ferry_client: {e}", file=sys.stderr)
        return 255 if args.command == "exec" else 1
    finally:
        if conn is not None:
            conn.close()


if __name__ == "__main__":
    sys.exit(main())
