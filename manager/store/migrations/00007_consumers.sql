-- Third-party applications of the Apollo-compatible Open API (consumer.
-- Consumer) and their grants (consumer.Grant). A token is kept only as its
-- SHA-256. A revoked consumer keeps its row, so that the audit log still
-- names it; its appId may then be given to a new consumer. Audit entries of
-- Open API calls name the consumer beside the operator.

-- +goose Up
CREATE TABLE consumers (
    id          INTEGER PRIMARY KEY,
    app_id      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    org_id      TEXT    NOT NULL DEFAULT '',
    org_name    TEXT    NOT NULL DEFAULT '',
    owner_name  TEXT    NOT NULL DEFAULT '',
    owner_email TEXT    NOT NULL DEFAULT '',
    token_hash  BLOB    NOT NULL UNIQUE,
    expires_at  INTEGER,
    revoked_at  INTEGER,
    created_by  TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER
);
CREATE UNIQUE INDEX consumers_active_app_id ON consumers (app_id) WHERE revoked_at IS NULL;

-- cluster_name and namespace_name are '' for "all of them".
CREATE TABLE consumer_grants (
    id             INTEGER PRIMARY KEY,
    consumer_id    INTEGER NOT NULL REFERENCES consumers (id) ON DELETE CASCADE,
    app_id         TEXT    NOT NULL,
    cluster_name   TEXT    NOT NULL DEFAULT '',
    namespace_name TEXT    NOT NULL DEFAULT '',
    can_modify     INTEGER NOT NULL DEFAULT 0 CHECK (can_modify IN (0, 1)),
    can_release    INTEGER NOT NULL DEFAULT 0 CHECK (can_release IN (0, 1)),
    created_by     TEXT    NOT NULL DEFAULT '',
    created_at     INTEGER,
    UNIQUE (consumer_id, app_id, cluster_name, namespace_name)
);

ALTER TABLE audit_log ADD COLUMN consumer TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE audit_log DROP COLUMN consumer;
DROP TABLE consumer_grants;
DROP TABLE consumers;
