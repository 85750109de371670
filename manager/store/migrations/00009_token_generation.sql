-- Each user's token generation: a console token carries the generation
-- it was issued in, and a password change moves the user to the next one,
-- so every token issued before the change stops working at once.

-- +goose Up
ALTER TABLE users ADD COLUMN token_gen INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE users DROP COLUMN token_gen;
