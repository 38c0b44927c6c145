-- Approval requests (see src/approval.rs). `id` is `ap_` + 10 base32
-- characters. A request is answered once: every answer is an
-- `UPDATE … WHERE status = 'pending'` (compare-and-set), so of two answers
-- racing exactly one changes the row.

CREATE TABLE approvals (
    id           TEXT        PRIMARY KEY,
    task_id      TEXT        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    call_id      TEXT        NOT NULL,
    agent        TEXT        NOT NULL,
    tool         TEXT        NOT NULL,
    command      TEXT        NOT NULL,
    rule         TEXT        NOT NULL,
    reason       TEXT        NOT NULL,
    status       TEXT        NOT NULL
                 CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    requested_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    decided_by   TEXT,                       -- `timeout` for an expired request
    decided_at   TIMESTAMPTZ,
    note         TEXT
);

CREATE INDEX approvals_status_idx ON approvals (status, requested_at);
CREATE INDEX approvals_task_idx ON approvals (task_id);
