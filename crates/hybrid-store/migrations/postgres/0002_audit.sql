-- The tamper-evident audit trail (see src/audit.rs for the hash encoding).
-- `seq` is 1-based and gapless; each row's `prev_hash` is the previous row's
-- `hash`. `detail` is canonical JSON text (sorted keys, no whitespace), hashed
-- exactly as stored: JSON (not JSONB) keeps that text byte for byte. No
-- foreign key to tasks: the trail outlives them, and some actions belong to
-- no task. The primary key on `seq` keeps the chain linear under concurrent
-- appenders; one that loses a race retries under `LOCK TABLE audit_log IN
-- SHARE ROW EXCLUSIVE MODE`, which readers do not wait for.

CREATE TABLE audit_log (
    seq         BIGINT      PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    task_id     TEXT,
    agent       TEXT        NOT NULL,
    action      TEXT        NOT NULL,
    command     TEXT,
    output      TEXT,
    user_name   TEXT        NOT NULL,        -- the seed's `user` (a reserved word)
    approved_by TEXT,
    detail      JSON        NOT NULL,
    prev_hash   TEXT        NOT NULL,
    hash        TEXT        NOT NULL
);

CREATE INDEX audit_log_task_idx ON audit_log (task_id, seq);
