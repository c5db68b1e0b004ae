"""Redis key layout. Every key name is built here (and, for the keys the Lua scripts reach from
a session id or a participant, from the suffixes below, which the scripts receive).

Keys of one pool share the hash tag `{<pool>}`, so every atomic step (creating a session
touches the pool and both participants' number sets) touches one Redis Cluster slot
(cluster spec, "hash tags"). Only the pool directory lives outside the pools' slots.

    sipmask:pools                   set      names of all pools
    sipmask:numbers                 hash     virtual number -> pool (routes a lookup)
    sipmask:{P}:meta                hash     the pool exists; name, updated_at
    sipmask:{P}:lru                 zset     auto-assignable numbers, score = last assigned (ms)
    sipmask:{P}:reserved            set      numbers assigned only when pinned
    sipmask:{P}:draining            set      numbers dropped while open sessions use them
    sipmask:{P}:geo                 hash     number -> "country|area"
    sipmask:{P}:use                 hash     number -> open (session, participant) uses
    sipmask:{P}:sessions            zset     open session ids, score = expires_at (ms)
    sipmask:{P}:closed              zset     closed session ids, score = closed_at (ms)
    sipmask:{P}:s:<id>              hash     one session (doc + mutable fields)
    sipmask:{P}:p:<participant>     hash     virtual number -> session id (open sessions):
                                             the binding table and the uniqueness rule
    sipmask:{P}:pair:<a>\\n<b>      string   "number of a\\nnumber of b" (sticky)
    sipmask:{P}:i:<id>              list     call records of a session (JSON)
"""

from __future__ import annotations

from .numbers import check_pool_name

# Suffixes after the pool prefix; the Lua scripts get the same strings (see redis.py).
SESSION = "s:"
PARTICIPANT = "p:"
PAIR = "pair:"
INTERACTIONS = "i:"
META = "meta"
LRU = "lru"
RESERVED = "reserved"
DRAINING = "draining"
GEO = "geo"
USE = "use"
SESSIONS = "sessions"
CLOSED = "closed"


class Keys:
    """Key names under one prefix.

    Args:
        prefix: the namespace of all keys (several sipmask deployments may share a Redis).
    """

    def __init__(self, prefix: str = "sipmask") -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("the key prefix may not contain braces (hash tags)")
        self.prefix = prefix
        self.pools = f"{prefix}:pools"
        self.directory = f"{prefix}:numbers"

    def pool(self, pool: str) -> str:
        """The prefix of every key of a pool, hash tag included: `sipmask:{P}:`."""
        return f"{self.prefix}:{{{check_pool_name(pool)}}}:"

    def meta(self, pool: str) -> str:
        return self.pool(pool) + META

    def lru(self, pool: str) -> str:
        return self.pool(pool) + LRU

    def reserved(self, pool: str) -> str:
        return self.pool(pool) + RESERVED

    def draining(self, pool: str) -> str:
        return self.pool(pool) + DRAINING

    def geo(self, pool: str) -> str:
        return self.pool(pool) + GEO

    def use(self, pool: str) -> str:
        return self.pool(pool) + USE

    def sessions(self, pool: str) -> str:
        return self.pool(pool) + SESSIONS

    def closed(self, pool: str) -> str:
        return self.pool(pool) + CLOSED

    def session(self, pool: str, session_id: str) -> str:
        return self.pool(pool) + SESSION + session_id

    def participant(self, pool: str, key: str) -> str:
        return self.pool(pool) + PARTICIPANT + key

    def pair(self, pool: str, first: str, second: str) -> str:
        """The sticky key of a pair; the caller orders the pair (lower key first)."""
        return self.pool(pool) + PAIR + first + "\n" + second

    def interactions(self, pool: str, session_id: str) -> str:
        return self.pool(pool) + INTERACTIONS + session_id

    def all_of_pool(self, pool: str) -> list[str]:
        """The fixed keys of a pool (not its sessions, participants, pairs or records)."""
        return [self.pool(pool) + s for s in (META, LRU, RESERVED, DRAINING, GEO, USE, SESSIONS)]
