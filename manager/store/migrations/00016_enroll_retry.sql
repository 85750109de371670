-- +goose Up
-- What an enrollment issued, so that an agent that lost the answer may
-- retry with the same key: the SHA-256 of the certificate's public key
-- (SubjectPublicKeyInfo), the join token it used and when. A server whose
-- agent has connected since (last_seen at or after enrolled_at) takes no
-- retry. Rows enrolled before this migration have NULLs: no retry.
ALTER TABLE servers ADD COLUMN enroll_spki BLOB;
ALTER TABLE servers ADD COLUMN enroll_token TEXT;
ALTER TABLE servers ADD COLUMN enrolled_at INTEGER;

-- +goose Down
ALTER TABLE servers DROP COLUMN enrolled_at;
ALTER TABLE servers DROP COLUMN enroll_token;
ALTER TABLE servers DROP COLUMN enroll_spki;
