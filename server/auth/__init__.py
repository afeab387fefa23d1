"""Who may do what: identities, the policy file, rights per RPC, enforcement.

    identity.py    who is calling: the names of a verified client certificate
                   (subject CN, DNS and URI SANs) and the bearer token, read
                   from the gRPC context
    tokens.py      bearer tokens as SHA-256 digests, matched in constant time
    rights.py      the four rights and which RPC needs which, on which namespace
    policy.py      the policy file (TOML): principals, their identities, their
                   grants of rights on namespaces; every rule checked at load
    authorizer.py  the one place ``api/handler.py`` asks: authenticate the call,
                   then check its right on its namespace; re-reads the policy

Policy names match the caller's namespace as it is on the wire (``pacs-a``), not
the protocol partitions the server keeps inside it (``pacs-a@qido-rs``): a
partition is the server's own bookkeeping, ``@`` is outside the namespace rule,
and a right on a namespace is a right on every protocol's entries in it
(Invalidate drops them all at once anyway).
"""
