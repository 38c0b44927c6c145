-- The tamper-evident audit trail (see src/audit.rs for the hash encoding).
-- `seq` is 1-based and gapless; each row's `prev_hash` is the previous row's
-- `hash`. `detail` is canonical JSON text (sorted keys, no whitespace), hashed
-- exactly as stored. No foreign key to tasks: the trail outlives them, and
-- some actions belong to no task.

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY NOT NULL,
    at          TEXT    NOT NULL,            -- RFC 3339 UTC, microseconds, `Z`
    task_id     TEXT,
    agent       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    command     TEXT,
    output      TEXT,
    user_name   TEXT    NOT NULL,            -- the seed's `user`
    approved_by TEXT,
    detail      TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
);

CREATE INDEX audit_log_task_idx ON audit_log (task_id, seq);
