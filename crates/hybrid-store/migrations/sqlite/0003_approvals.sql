-- Approval requests (see src/approval.rs). `id` is `ap_` + 10 base32
-- characters. A request is answered once: every answer is an
-- `UPDATE … WHERE status = 'pending'` (compare-and-set), so of two answers
-- racing exactly one changes the row. Timestamps as in 0001.

CREATE TABLE approvals (
    id           TEXT PRIMARY KEY NOT NULL,
    task_id      TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    call_id      TEXT NOT NULL,
    agent        TEXT NOT NULL,
    tool         TEXT NOT NULL,
    command      TEXT NOT NULL,
    rule         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    status       TEXT NOT NULL
                 CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    requested_at TEXT NOT NULL,
    expires_at   TEXT,
    decided_by   TEXT,                    -- `timeout` for an expired request
    decided_at   TEXT,
    note         TEXT
);

CREATE INDEX approvals_status_idx ON approvals (status, requested_at);
CREATE INDEX approvals_task_idx ON approvals (task_id);
