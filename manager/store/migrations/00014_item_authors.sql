-- +goose Up
-- Who created and who last changed a config item (a console user, or the
-- operator an Open API call names), as Apollo's item DTOs report them.
-- Items that existed before this migration, and those imported from a
-- package, have an empty author: nobody is known to have written them.
ALTER TABLE config_items ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE config_items ADD COLUMN updated_by TEXT NOT NULL DEFAULT '';
ALTER TABLE node_config_items ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE node_config_items ADD COLUMN updated_by TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE node_config_items DROP COLUMN updated_by;
ALTER TABLE node_config_items DROP COLUMN created_by;
ALTER TABLE config_items DROP COLUMN updated_by;
ALTER TABLE config_items DROP COLUMN created_by;
