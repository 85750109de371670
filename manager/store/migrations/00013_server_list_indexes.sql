-- +goose Up
-- Lists of servers at fleet size (10,000 and more): a page far down the
-- list skips its offset in a small index instead of the table's rows,
-- which carry their facts; hostname prefixes are looked up by range.
CREATE INDEX servers_id ON servers (id);
CREATE INDEX servers_hostname ON servers (hostname, id);
-- Enrolled servers (those that can be online or offline), counted without
-- reading the table.
CREATE INDEX servers_enrolled ON servers (id) WHERE cert_serial <> '';

-- +goose Down
DROP INDEX servers_enrolled;
DROP INDEX servers_hostname;
DROP INDEX servers_id;
