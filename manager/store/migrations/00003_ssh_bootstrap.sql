-- SSH bootstrap: credentials an operator asked the manager to keep, and the
-- host keys of the SSH servers it has connected to (trust on first use).

-- +goose Up
-- Sealed (AES-256-GCM, manager/sealed) SSH credentials; NULL: not kept.
ALTER TABLE servers ADD COLUMN ssh_password    BLOB;
ALTER TABLE servers ADD COLUMN ssh_private_key BLOB;
ALTER TABLE servers ADD COLUMN ssh_passphrase  BLOB;

-- One recorded host key per SSH endpoint. A server row may come and go; the
-- host behind ip:port keeps its key, so this table does not refer to servers.
CREATE TABLE ssh_host_keys (
    address     TEXT    PRIMARY KEY, -- "ip:port", as net.JoinHostPort writes it
    key_type    TEXT    NOT NULL,    -- e.g. ssh-ed25519
    public_key  BLOB    NOT NULL,    -- SSH wire format
    fingerprint TEXT    NOT NULL,    -- SHA256:<base64>, as ssh-keygen -l prints it
    created_at  INTEGER
);

-- +goose Down
DROP TABLE ssh_host_keys;
ALTER TABLE servers DROP COLUMN ssh_passphrase;
ALTER TABLE servers DROP COLUMN ssh_private_key;
ALTER TABLE servers DROP COLUMN ssh_password;
