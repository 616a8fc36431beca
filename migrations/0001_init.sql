-- 0001_init.sql - the control plane's first schema.
--
-- Applied by controlplane/store.c inside one transaction, then recorded in
-- schema_migrations. Entities are stored as the canonical JSON their codec writes
-- (fg_upstream_encode, fg_route_encode, ...), so the columns beside `spec` hold only what
-- SQL itself must see: primary keys, the route -> upstream reference (so deleting a used
-- upstream fails), the order of routes, and a per-row revision for optimistic concurrency.
-- Timestamps are RFC 3339 UTC text with milliseconds ("2026-11-25T19:43:28.123Z").

CREATE TABLE schema_migrations (
    name       TEXT PRIMARY KEY,          -- migration file name, e.g. '0001_init.sql'
    applied_at TEXT NOT NULL
);

-- One row: the config version. Every committed mutation bumps it and stores the snapshot
-- of the new version in the same transaction.
CREATE TABLE config_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL CHECK (version >= 0)
);
INSERT INTO config_state (id, version) VALUES (1, 0);

CREATE TABLE upstreams (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL CHECK (json_valid(spec)),
    revision   INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE routes (
    id         TEXT PRIMARY KEY,
    upstream   TEXT NOT NULL REFERENCES upstreams (name) ON UPDATE RESTRICT ON DELETE RESTRICT,
    position   INTEGER NOT NULL,          -- config order; not UNIQUE so reordering is one pass
    spec       TEXT NOT NULL CHECK (json_valid(spec)),
    revision   INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX routes_by_upstream ON routes (upstream);
CREATE INDEX routes_by_position ON routes (position);

-- API keys: only the SHA-256 of a key is ever stored (and shipped in snapshots).
CREATE TABLE api_keys (
    name       TEXT PRIMARY KEY,
    key_sha256 TEXT NOT NULL UNIQUE CHECK (length(key_sha256) = 64),
    spec       TEXT NOT NULL CHECK (json_valid(spec)),
    revision   INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Top-level settings sections, each the JSON object of that section (security without its
-- auth.keys, which live in api_keys). An absent row means "all defaults".
CREATE TABLE settings (
    key        TEXT PRIMARY KEY
               CHECK (key IN ('proxy', 'security', 'rateLimit', 'logging', 'metrics')),
    value      TEXT NOT NULL CHECK (json_valid(value)),
    revision   INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL
);

-- Every version ever committed: what the publisher sends, and the history that diff and
-- rollback read. `config` is the canonical text the checksum covers.
CREATE TABLE snapshots (
    version    INTEGER PRIMARY KEY,
    checksum   TEXT NOT NULL CHECK (length(checksum) = 64),
    created_at TEXT NOT NULL,
    config     TEXT NOT NULL,
    summary    TEXT NOT NULL DEFAULT '',  -- what changed, e.g. 'create route users'
    actor      TEXT NOT NULL DEFAULT ''   -- who changed it, e.g. 'admin-api', 'migrate'
);
