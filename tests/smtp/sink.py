"""An SMTP sink for the black-box tests: a real SMTP server (aiosmtpd) on loopback
that keeps every message it accepts as files.

    sink.py --dir DIR [--port N] [--refuse] [--auth USER:PASS]

Listens on 127.0.0.1:N (N = 0, the default: a port the system picks) and prints
the port it listens on, alone on the first line of stdout, once it accepts
connections. Each accepted message n (1, 2, ...) becomes two files in DIR:

    n.json  the envelope: {"mail_from": ..., "rcpt_tos": [...], "login": ...}
    n.eml   the message as received (RFC 5322 bytes, dot-unstuffed)

each written under a temporary name and renamed into place, the JSON first: a
reader that sees n.eml also sees a complete n.json.

--refuse   answers 550 to every RCPT TO, so no message is ever accepted.
--auth     requires AUTH (PLAIN or LOGIN, offered without TLS) with these
           credentials before MAIL FROM.

It exits cleanly on SIGTERM or SIGINT and when its stdin reaches end of file, so
a test process that dies (and so closes the pipe it holds) takes its sink with it.
For a manual run keep stdin open: `sleep infinity | python sink.py --dir /tmp/m`.

Logs go to stderr.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, directory, refuse):
        self.directory = directory
        self.refuse = refuse
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return "550 5.1.1 <%s>: recipient refused by the test sink" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        n = self.count
        login = getattr(session, "auth_data", None)
        if isinstance(login, bytes):
            login = login.decode("utf-8", "replace")
        elif login is not None and not isinstance(login, str):
            login = str(login)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "mail_options": list(envelope.mail_options),
            "rcpt_options": list(envelope.rcpt_options),
            "login": login if session.authenticated else None,
        }
        content = envelope.original_content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        write_atomically(
            os.path.join(self.directory, "%d.json" % n),
            json.dumps(meta, ensure_ascii=False).encode("utf-8"),
        )
        write_atomically(os.path.join(self.directory, "%d.eml" % n), content)
        logging.info("message %d from %r to %r", n, envelope.mail_from, envelope.rcpt_tos)
        return "250 2.0.0 OK: queued as %d" % n


def write_atomically(path, data):
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, ".%s.tmp" % name)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode("utf-8")
        self.password = password.encode("utf-8")

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if (
            mechanism in ("PLAIN", "LOGIN")
            and isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        ):
            return AuthResult(success=True, auth_data=auth_data.login)
        return AuthResult(success=False, handled=False)


def parse_args(argv):
    parser = argparse.ArgumentParser(description="SMTP sink for tests")
    parser.add_argument("--dir", required=True, help="where accepted messages go")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--refuse", action="store_true", help="550 to every RCPT TO")
    parser.add_argument("--auth", metavar="USER:PASS", help="require AUTH PLAIN/LOGIN")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0..65535")
    if args.auth is not None and ":" not in args.auth:
        parser.error("--auth takes USER:PASS")
    return args


def watch_stdin(loop, stop):
    """Sets `stop` once stdin reaches end of file (or fails)."""

    def run():
        # os.read on the descriptor, not sys.stdin: a daemon thread blocked in
        # a buffered read holds its lock, and interpreter shutdown aborts on it.
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=run, name="stdin-watch", daemon=True).start()


async def serve(args):
    os.makedirs(args.dir, exist_ok=True)
    handler = Sink(args.dir, args.refuse)
    options = {
        # A fixed name: the default asks the resolver for this host's FQDN.
        "hostname": "sink.test",
        "ident": "matrix-tests SMTP sink",
    }
    if args.auth is not None:
        user, password = args.auth.split(":", 1)
        options.update(
            authenticator=Authenticator(user, password),
            auth_required=True,
            # Loopback without TLS: the test offers AUTH in the clear.
            auth_require_tls=False,
        )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(
        lambda: SMTP(handler, **options), host="127.0.0.1", port=args.port
    )
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write("%d\n" % port)
    sys.stdout.flush()
    logging.info("listening on 127.0.0.1:%d, messages in %s", port, args.dir)
    watch_stdin(loop, stop)
    await stop.wait()
    logging.info("stopping")
    server.close()
    try:
        # Python 3.12+ waits for open connections here too: bounded.
        await asyncio.wait_for(server.wait_closed(), timeout=2)
    except asyncio.TimeoutError:
        pass


def main(argv):
    args = parse_args(argv)
    # The test wants AUTH over plain loopback, which aiosmtpd warns about.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
