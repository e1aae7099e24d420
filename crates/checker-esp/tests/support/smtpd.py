"""An aiosmtpd server for the esp checker's SMTP tests.

Binds 127.0.0.1 on a free port, prints `READY <port>` once listening, and serves until its
stdin closes (so it stops when the test process that started it exits).

usage: smtpd.py plain
       smtpd.py starttls <cert.pem> <key.pem>
"""

import asyncio
import ssl
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


async def main() -> None:
    mode = sys.argv[1]
    tls_context = None
    if mode == "starttls":
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(sys.argv[2], sys.argv[3])
    elif mode != "plain":
        raise SystemExit(f"unknown mode {mode}")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            Sink(),
            hostname="mx.smtp.test",
            ident="funnelgate test ESMTP",
            tls_context=tls_context,
            require_starttls=False,
        ),
        host="127.0.0.1",
        port=0,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    # stop when stdin closes
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
