-- Software packages (pkg.Package). The file itself lives in the package
-- directory under its sha256; the row holds what the manager knows of it.
-- manifest is the package's admq-package.json, as JSON.

-- +goose Up
CREATE TABLE packages (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    arch       TEXT    NOT NULL CHECK (arch IN ('x86', 'arm', 'all')),
    ext        TEXT    NOT NULL,
    file_name  TEXT    NOT NULL,
    sha256     TEXT    NOT NULL UNIQUE CHECK (length(sha256) = 64),
    size       INTEGER NOT NULL CHECK (size > 0),
    mq_type    INTEGER NOT NULL DEFAULT 0,
    effective  INTEGER NOT NULL DEFAULT 1 CHECK (effective IN (0, 1)),
    manifest   TEXT    NOT NULL DEFAULT '{}',
    created_at INTEGER,
    updated_at INTEGER,
    UNIQUE (name, version, arch)
);

-- +goose Down
DROP TABLE packages;
