-- Initial schema of the manager's database.
--
-- Conventions: ids are caller-assigned 64-bit snowflakes (INTEGER PRIMARY
-- KEY, i.e. the rowid); times are INTEGER unix milliseconds and NULL stands
-- for "no time" (the zero time.Time); an absent id reference is NULL.

-- +goose Up
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash BLOB    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at    INTEGER,
    updated_at    INTEGER
);
CREATE INDEX users_role ON users (role);

CREATE TABLE areas (
    id         INTEGER PRIMARY KEY,
    code       TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL DEFAULT '',
    created_at INTEGER,
    updated_at INTEGER
);
CREATE INDEX areas_name ON areas (name);

CREATE TABLE servers (
    id            INTEGER PRIMARY KEY,
    area_id       INTEGER REFERENCES areas (id) ON DELETE RESTRICT,
    manager_ip    TEXT    NOT NULL UNIQUE,
    data_ip       TEXT    NOT NULL DEFAULT '',
    ssh_port      INTEGER NOT NULL DEFAULT 0,
    account       TEXT    NOT NULL DEFAULT '',
    program_dir   TEXT    NOT NULL DEFAULT '',
    data_dir      TEXT    NOT NULL DEFAULT '',
    cpu_info      TEXT    NOT NULL DEFAULT '',
    cpu_type      INTEGER NOT NULL DEFAULT 0,
    agent_status  TEXT    NOT NULL DEFAULT 'pending'
                  CHECK (agent_status IN ('pending', 'online', 'offline')),
    agent_version TEXT    NOT NULL DEFAULT '',
    hostname      TEXT    NOT NULL DEFAULT '',
    last_seen     INTEGER,
    facts         TEXT    NOT NULL DEFAULT '{}',
    cert_serial   TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER,
    updated_at    INTEGER
);
-- Filtered lists, newest first, and the foreign key check of DeleteArea.
CREATE INDEX servers_area_id ON servers (area_id, id);
CREATE INDEX servers_agent_status ON servers (agent_status, id);

CREATE TABLE join_tokens (
    id          TEXT    PRIMARY KEY,
    secret_hash BLOB    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    area_id     INTEGER REFERENCES areas (id) ON DELETE RESTRICT,
    server_id   INTEGER REFERENCES servers (id) ON DELETE CASCADE,
    max_uses    INTEGER NOT NULL DEFAULT 0 CHECK (max_uses >= 0),
    uses        INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0),
    expires_at  INTEGER,
    revoked_at  INTEGER,
    created_by  TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER
);
CREATE INDEX join_tokens_area_id ON join_tokens (area_id);
CREATE INDEX join_tokens_server_id ON join_tokens (server_id);
CREATE INDEX join_tokens_created_at ON join_tokens (created_at);

-- Serials of client certificates that must no longer be accepted. server_id
-- is deliberately not a foreign key: the server row is gone by then.
CREATE TABLE revoked_certs (
    serial     TEXT    PRIMARY KEY,
    server_id  INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    at        INTEGER,
    username  TEXT    NOT NULL DEFAULT '',
    role      TEXT    NOT NULL DEFAULT '',
    method    TEXT    NOT NULL DEFAULT '',
    path      TEXT    NOT NULL DEFAULT '',
    remote_ip TEXT    NOT NULL DEFAULT '',
    status    INTEGER NOT NULL DEFAULT 0,
    code      INTEGER NOT NULL DEFAULT 0,
    detail    TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE revoked_certs;
DROP TABLE join_tokens;
DROP TABLE servers;
DROP TABLE areas;
DROP TABLE users;
