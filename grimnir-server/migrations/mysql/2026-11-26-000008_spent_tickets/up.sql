-- Event stream tickets are good once across every server sharing the database: the id of each
-- ticket presented is stored, until the ticket would have expired, and a second insert of the
-- same id fails on the key.
CREATE TABLE spent_tickets (
    jti VARCHAR(36) PRIMARY KEY,
    expires_at DATETIME(6) NOT NULL
);
CREATE INDEX spent_tickets_expires_idx ON spent_tickets (expires_at);
