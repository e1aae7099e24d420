"""Run checkdmarc (the reference implementation) against the test nameserver and print JSON.

Used by the esp checker's golden tests (tests/dns.rs). checkdmarc and dnspython query port 53
by default; instead of monkeypatching, every call gets `nameservers=[Do53Nameserver(ip, port)]`,
a dnspython nameserver object that checkdmarc passes through untouched, so all of its lookups
(including the ones it makes without a resolver argument, such as the SPF `exp` check) go to
the test server on its own port.

usage: checkdmarc_golden.py <ip:port> <domain>...
"""

import json
import sys

import dns.nameserver
from checkdmarc._constants import __version__
from checkdmarc.dmarc import DMARCError, check_dmarc, parse_dmarc_record, query_dmarc_record
from checkdmarc.spf import SPFError, check_spf, get_spf_record

TIMEOUT = 2.0


def main() -> None:
    host, port = sys.argv[1].rsplit(":", 1)
    ns = [dns.nameserver.Do53Nameserver(host, int(port))]
    out = {"checkdmarc_version": __version__, "domains": {}}
    for domain in sys.argv[2:]:
        spf = check_spf(domain, nameservers=ns, timeout=TIMEOUT)
        # check_spf reports only the message; the class comes from the raising API
        spf["error_class"] = None
        try:
            get_spf_record(domain, nameservers=ns, timeout=TIMEOUT)
        except SPFError as e:
            spf["error_class"] = type(e).__name__
        dmarc = check_dmarc(domain, nameservers=ns, timeout=TIMEOUT)
        dmarc["error_class"] = None
        try:
            q = query_dmarc_record(domain, nameservers=ns, timeout=TIMEOUT)
            parse_dmarc_record(q["record"], q["location"], nameservers=ns, timeout=TIMEOUT)
        except DMARCError as e:
            dmarc["error_class"] = type(e).__name__
        out["domains"][domain] = {"spf": spf, "dmarc": dmarc}
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main()
