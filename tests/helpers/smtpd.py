#!/usr/bin/python3
"""A real SMTP server for the email tests (aiosmtpd, Debian's python3-aiosmtpd).

usage: smtpd.py OUTDIR [--tls CERT KEY] [--auth USER PASSWORD]

Listens on 127.0.0.1, a port of the system's choosing, and prints that port on the first
line of stdout once it accepts connections. With --tls it offers STARTTLS and requires it
before MAIL and AUTH; with --auth it requires AUTH PLAIN or LOGIN with that user and
password (a wrong one is answered 535). Every message is written as OUTDIR/N.eml, with
OUTDIR/N.json: {"from", "to", "tls", "auth"}.
"""
import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

args = sys.argv[1:]
outdir = args.pop(0)
tls = auth = None
while args:
    flag = args.pop(0)
    if flag == "--tls":
        tls = (args.pop(0), args.pop(0))
    elif flag == "--auth":
        auth = (args.pop(0), args.pop(0))
    else:
        sys.exit("unknown flag " + flag)
os.makedirs(outdir, exist_ok=True)


class Authenticator:
    def __call__(self, server, session, envelope, mechanism, data):
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        got = (data.login.decode(), data.password.decode())
        ok = got == auth
        return AuthResult(success=ok, handled=False, auth_data=got[0] if ok else None)


class Sink:
    n = 0

    async def handle_DATA(self, server, session, envelope):
        Sink.n += 1
        base = os.path.join(outdir, "%d" % Sink.n)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        meta = {"from": envelope.mail_from, "to": envelope.rcpt_tos,
                "tls": session.ssl is not None, "auth": session.auth_data}
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 OK"


context = None
if tls:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls)


def factory():
    return SMTP(Sink(), hostname="smtp.test", tls_context=context,
                require_starttls=context is not None,
                authenticator=Authenticator() if auth else None,
                auth_required=auth is not None,
                auth_require_tls=context is not None)


async def main():
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


asyncio.run(main())
