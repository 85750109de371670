-- Deployment jobs (deploy.Job) and their steps, one row per step of each
-- node (deploy.Step). A job goes with its cluster; a step names its node
-- without a foreign key so that the history outlives a removed node.

-- +goose Up
CREATE TABLE jobs (
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
CREATE INDEX jobs_cluster_id ON jobs (cluster_id);
CREATE INDEX jobs_state ON jobs (state);

CREATE TABLE job_steps (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    node_id     INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled')),
    detail      TEXT    NOT NULL DEFAULT '',
    started_at  INTEGER,
    finished_at INTEGER
);
CREATE INDEX job_steps_job_id ON job_steps (job_id);

-- +goose Down
DROP TABLE job_steps;
DROP TABLE jobs;
