"""Authentication-Results (RFC 8601): did our receiving server see a DKIM, DMARC or ARC pass?

A From address is trivially forged. The receiving server checks DKIM signatures, DMARC and ARC
and records its verdicts in ``Authentication-Results: <authserv-id>; dkim=pass header.d=...``.
Only headers carrying *our* server's authserv-id can be trusted (anyone can write one into a
message they send), so the operator names it (``authserv_ids``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MethodResult:
    """One ``method=result`` clause with its properties (``header.d``, ``header.from``...)."""

    method: str
    result: str
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str
    results: list[MethodResult]


def _strip_comments(value: str) -> str:
    """Remove RFC 5322 comments ``( ... )``, nested, outside quoted strings."""
    out, depth, quoted = [], 0, False
    for char in value:
        if char == '"' and depth == 0:
            quoted = not quoted
        if not quoted and char == "(":
            depth += 1
            continue
        if not quoted and char == ")" and depth:
            depth -= 1
            continue
        if depth == 0:
            out.append(char)
    return "".join(out)


def parse_auth_results(value: str) -> AuthResults | None:
    """One header's value, or ``None`` when it is not readable as Authentication-Results."""
    clauses = [c.strip() for c in _strip_comments(value).split(";")]
    if not clauses or not clauses[0]:
        return None
    authserv_id = clauses[0].split()[0].casefold()
    results = []
    for clause in clauses[1:]:
        tokens = re.findall(r'[^\s=]+="[^"]*"|[^\s=]+=[^\s]+|[^\s]+', clause)
        if not tokens or "=" not in tokens[0]:
            continue  # "none", or garbage
        method, _, result = tokens[0].partition("=")
        props = {}
        for token in tokens[1:]:
            key, sep, prop = token.partition("=")
            if sep:
                props[key.casefold()] = prop.strip('"').casefold()
        results.append(MethodResult(method.split("/")[0].casefold(), result.casefold(), props))
    return AuthResults(authserv_id, results)


def aligned(domain: str, sender_domain: str) -> bool:
    """Relaxed alignment: the same domain, or one a subdomain of the other."""
    domain, sender_domain = domain.casefold().rstrip("."), sender_domain.casefold().rstrip(".")
    return bool(domain) and (
        domain == sender_domain or sender_domain.endswith("." + domain) or domain.endswith("." + sender_domain)
    )


def authenticated(headers: list[str], *, sender_domain: str, authserv_ids: frozenset[str]) -> tuple[bool, str]:
    """Whether a trusted verdict vouches for the sender's domain, and why (or why not)."""
    trusted = [r for h in headers if (r := parse_auth_results(h)) is not None and r.authserv_id in authserv_ids]
    if not trusted:
        return False, "no Authentication-Results from " + ", ".join(sorted(authserv_ids))
    for verdict in trusted:
        for found in verdict.results:
            if found.result != "pass":
                continue
            if found.method == "dkim":
                signer = found.properties.get("header.d") or found.properties.get("header.i", "").rpartition("@")[2]
                if aligned(signer, sender_domain):
                    return True, f"dkim=pass header.d={signer}"
            elif found.method == "dmarc":
                from_domain = found.properties.get("header.from", sender_domain)
                if aligned(from_domain, sender_domain):
                    return True, "dmarc=pass"
            elif found.method == "arc":
                return True, "arc=pass"
    seen = ", ".join(f"{r.method}={r.result}" for v in trusted for r in v.results) or "no results"
    return False, f"no aligned dkim, dmarc or arc pass ({seen})"
