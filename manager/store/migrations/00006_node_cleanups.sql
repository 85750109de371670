-- Removals of deleted clusters' nodes that their agent has yet to do
-- (deploy.Cleanup): the agent was offline when the cluster was deleted, or
-- went away during the removal. The node's records are gone, so a row
-- carries the whole removal request. It goes with its server: a deleted
-- server's agent is revoked and will not ask again.

-- +goose Up
CREATE TABLE node_cleanups (
    id              INTEGER PRIMARY KEY,
    server_id       INTEGER NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    node_name       TEXT    NOT NULL, -- the name the agent knows: the node's id
    cluster_name    TEXT    NOT NULL DEFAULT '',
    operation_id    TEXT    NOT NULL,
    program_dir     TEXT    NOT NULL,
    data_dir        TEXT    NOT NULL,
    allowed_roots   TEXT    NOT NULL DEFAULT '[]', -- JSON array of absolute dirs
    reason          TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      TEXT    NOT NULL DEFAULT '',
    last_attempt_at INTEGER,
    UNIQUE (server_id, node_name)
);

-- +goose Down
DROP TABLE node_cleanups;
