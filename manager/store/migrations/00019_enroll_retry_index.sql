-- +goose Up
-- An enrollment looks for a server this token enrolled with this key
-- (store.RetryServer). Without an index that was a scan of every server
-- per enrollment: 30 % of the manager's CPU while 10,000 agents enrolled.
CREATE INDEX servers_enroll_retry ON servers (enroll_token, enroll_spki) WHERE enroll_spki IS NOT NULL;

-- +goose Down
DROP INDEX servers_enroll_retry;
