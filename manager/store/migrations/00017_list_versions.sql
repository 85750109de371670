-- +goose Up
-- Lists at fleet size (GET /server over 10,000 servers, a node file of
-- 1,000 items) keep what they encoded and reuse it until the data changes.
-- These versions, kept by triggers in the writing transaction itself, say
-- when it has: no write path can forget to bump them.

-- row_version changes with every change of what a server's list entry
-- shows, except its agent status and last seen time (live, not cached).
-- store's TestServerRowVersionColumns fails when a column is added to
-- servers without deciding whether it belongs here.
ALTER TABLE servers ADD COLUMN row_version INTEGER NOT NULL DEFAULT 1;

-- +goose StatementBegin
CREATE TRIGGER servers_row_version AFTER UPDATE ON servers
WHEN NOT (OLD.area_id IS NEW.area_id AND OLD.manager_ip IS NEW.manager_ip AND OLD.data_ip IS NEW.data_ip
    AND OLD.ssh_port IS NEW.ssh_port AND OLD.account IS NEW.account AND OLD.program_dir IS NEW.program_dir
    AND OLD.data_dir IS NEW.data_dir AND OLD.cpu_info IS NEW.cpu_info AND OLD.cpu_type IS NEW.cpu_type
    AND OLD.agent_version IS NEW.agent_version AND OLD.hostname IS NEW.hostname AND OLD.facts IS NEW.facts
    AND OLD.cert_serial IS NEW.cert_serial AND OLD.created_at IS NEW.created_at AND OLD.updated_at IS NEW.updated_at
    AND (OLD.ssh_password IS NULL) = (NEW.ssh_password IS NULL)
    AND (OLD.ssh_private_key IS NULL) = (NEW.ssh_private_key IS NULL))
BEGIN
    UPDATE servers SET row_version = OLD.row_version + 1 WHERE id = NEW.id;
END;
-- +goose StatementEnd

-- A server's entry shows its area's name.
-- +goose StatementBegin
CREATE TRIGGER areas_row_version AFTER UPDATE OF name ON areas WHEN OLD.name IS NOT NEW.name
BEGIN
    UPDATE servers SET row_version = row_version + 1 WHERE area_id = NEW.id;
END;
-- +goose StatementEnd

-- server_list_gen.gen changes whenever a filter of the server list (area,
-- hostname prefix, enrolled or not) may match other servers: the key of
-- the list's cached totals. clusters_gen changes whenever the clusters
-- with nodes on a server may have: the key of the cached deployClusters.
CREATE TABLE server_list_gen (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    gen          INTEGER NOT NULL,
    clusters_gen INTEGER NOT NULL
);
INSERT INTO server_list_gen (id, gen, clusters_gen) VALUES (1, 1, 1);

-- +goose StatementBegin
CREATE TRIGGER cluster_nodes_insert_gen AFTER INSERT ON cluster_nodes
BEGIN
    UPDATE server_list_gen SET clusters_gen = clusters_gen + 1 WHERE id = 1;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER cluster_nodes_delete_gen AFTER DELETE ON cluster_nodes
BEGIN
    UPDATE server_list_gen SET clusters_gen = clusters_gen + 1 WHERE id = 1;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER cluster_nodes_update_gen AFTER UPDATE OF cluster_id, server_id ON cluster_nodes
BEGIN
    UPDATE server_list_gen SET clusters_gen = clusters_gen + 1 WHERE id = 1;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER clusters_name_gen AFTER UPDATE OF name ON clusters
BEGIN
    UPDATE server_list_gen SET clusters_gen = clusters_gen + 1 WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER servers_insert_gen AFTER INSERT ON servers
BEGIN
    UPDATE server_list_gen SET gen = gen + 1 WHERE id = 1;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER servers_delete_gen AFTER DELETE ON servers
BEGIN
    UPDATE server_list_gen SET gen = gen + 1 WHERE id = 1;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER servers_update_gen AFTER UPDATE OF area_id, hostname, cert_serial ON servers
WHEN OLD.area_id IS NOT NEW.area_id OR OLD.hostname IS NOT NEW.hostname
    OR (OLD.cert_serial = '') <> (NEW.cert_serial = '')
BEGIN
    UPDATE server_list_gen SET gen = gen + 1 WHERE id = 1;
END;
-- +goose StatementEnd

-- items_version changes with every change of what the file's item list
-- shows: its items, and the cluster layer's items they mirror. Deleted
-- items (one by one or by a cascade) fire the delete trigger too.
ALTER TABLE node_config_files ADD COLUMN items_version INTEGER NOT NULL DEFAULT 1;

-- +goose StatementBegin
CREATE TRIGGER node_items_insert_version AFTER INSERT ON node_config_items
BEGIN
    UPDATE node_config_files SET items_version = items_version + 1 WHERE id = NEW.file_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER node_items_update_version AFTER UPDATE ON node_config_items
BEGIN
    UPDATE node_config_files SET items_version = items_version + 1 WHERE id IN (OLD.file_id, NEW.file_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER node_items_delete_version AFTER DELETE ON node_config_items
BEGIN
    UPDATE node_config_files SET items_version = items_version + 1 WHERE id = OLD.file_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER layer_items_update_version AFTER UPDATE ON config_items
BEGIN
    UPDATE node_config_files SET items_version = items_version + 1
    WHERE id IN (SELECT file_id FROM node_config_items WHERE layer_item_id IN (OLD.id, NEW.id));
END;
-- +goose StatementEnd

-- A page of servers' stamps (id, version, last seen, enrolled) is read
-- from this index alone, in id order, without visiting the rows.
CREATE INDEX servers_stamp ON servers (id, row_version, last_seen, cert_serial);

-- A page of a file's items, newest first, read from an index in id order
-- instead of sorting all of the file's items.
CREATE INDEX node_config_items_file_id ON node_config_items (file_id, id);
CREATE INDEX config_items_file_id ON config_items (file_id, id);

-- +goose Down
DROP INDEX servers_stamp;
DROP INDEX config_items_file_id;
DROP INDEX node_config_items_file_id;
DROP TRIGGER layer_items_update_version;
DROP TRIGGER node_items_delete_version;
DROP TRIGGER node_items_update_version;
DROP TRIGGER node_items_insert_version;
ALTER TABLE node_config_files DROP COLUMN items_version;
DROP TRIGGER clusters_name_gen;
DROP TRIGGER cluster_nodes_update_gen;
DROP TRIGGER cluster_nodes_delete_gen;
DROP TRIGGER cluster_nodes_insert_gen;
DROP TRIGGER servers_update_gen;
DROP TRIGGER servers_delete_gen;
DROP TRIGGER servers_insert_gen;
DROP TABLE server_list_gen;
DROP TRIGGER areas_row_version;
DROP TRIGGER servers_row_version;
ALTER TABLE servers DROP COLUMN row_version;
