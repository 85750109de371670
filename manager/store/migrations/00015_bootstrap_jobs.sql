-- +goose NO TRANSACTION
-- A server's SSH bootstrap may run as a job (type server_bootstrap) that a
-- console follows like a deployment. Such a job has no cluster but a
-- server, named without a foreign key: a failed bootstrap removes its
-- server, and the job stays as the record of what happened. A failed job
-- keeps the API code and data of its error (code 0: none).
--
-- SQLite cannot make cluster_id nullable in place, so the table is
-- rebuilt; foreign keys are off meanwhile (outside any transaction, as
-- SQLite requires) so that dropping the old table does not cascade to
-- job_steps. The store's writer is one connection, which runs all of this.

-- +goose Up
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE jobs_new (
    id          INTEGER PRIMARY KEY,
    type        TEXT    NOT NULL,
    cluster_id  INTEGER REFERENCES clusters (id) ON DELETE CASCADE,
    server_id   INTEGER,
    node_id     INTEGER,
    state       TEXT    NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'succeeded', 'failed')),
    reason      TEXT    NOT NULL DEFAULT '',
    code        INTEGER NOT NULL DEFAULT 0,
    error_data  TEXT    NOT NULL DEFAULT '',
    created_by  TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER,
    started_at  INTEGER,
    finished_at INTEGER,
    CHECK (cluster_id IS NOT NULL OR server_id IS NOT NULL)
);
INSERT INTO jobs_new (id, type, cluster_id, node_id, state, reason, created_by, created_at, started_at, finished_at)
    SELECT id, type, cluster_id, node_id, state, reason, created_by, created_at, started_at, finished_at FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_cluster_id ON jobs (cluster_id);
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX jobs_server_id ON jobs (server_id) WHERE server_id IS NOT NULL;
COMMIT;
PRAGMA foreign_keys = ON;

-- +goose Down
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
DELETE FROM job_steps WHERE job_id IN (SELECT id FROM jobs WHERE cluster_id IS NULL);
CREATE TABLE jobs_old (
    id          INTEGER PRIMARY KEY,
    type        TEXT    NOT NULL,
    cluster_id  INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    node_id     INTEGER,
    state       TEXT    NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'succeeded', 'failed')),
    reason      TEXT    NOT NULL DEFAULT '',
    created_by  TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER,
    started_at  INTEGER,
    finished_at INTEGER
);
INSERT INTO jobs_old (id, type, cluster_id, node_id, state, reason, created_by, created_at, started_at, finished_at)
    SELECT id, type, cluster_id, node_id, state, reason, created_by, created_at, started_at, finished_at FROM jobs
    WHERE cluster_id IS NOT NULL;
DROP TABLE jobs;
ALTER TABLE jobs_old RENAME TO jobs;
CREATE INDEX jobs_cluster_id ON jobs (cluster_id);
CREATE INDEX jobs_state ON jobs (state);
COMMIT;
PRAGMA foreign_keys = ON;
