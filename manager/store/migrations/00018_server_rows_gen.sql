-- +goose Up
-- rows_gen changes with every change of a server's row, presence included:
-- with gen and clusters_gen, the key of a page of the server list's
-- stamps, kept between requests (a page is read again at most once per
-- presence flush, not at every request).
ALTER TABLE server_list_gen ADD COLUMN rows_gen INTEGER NOT NULL DEFAULT 1;

-- +goose StatementBegin
CREATE TRIGGER servers_update_rows_gen AFTER UPDATE ON servers
BEGIN
    UPDATE server_list_gen SET rows_gen = rows_gen + 1 WHERE id = 1;
END;
-- +goose StatementEnd

-- A page's stamps are now read once per change, not at every request: the
-- covering index is not worth its upkeep at every presence write.
DROP INDEX servers_stamp;

-- +goose Down
CREATE INDEX servers_stamp ON servers (id, row_version, last_seen, cert_serial);
DROP TRIGGER servers_update_rows_gen;
ALTER TABLE server_list_gen DROP COLUMN rows_gen;
