-- coord's persistent schema: gptme-coordination's `work` and `messages`
-- tables as that package creates them, plus coord's gate policy table.
-- Run by coord_init(). Built-in SQL only: a client without coord (the
-- Python package, a plain sqlite3) must be able to use every object here.

CREATE TABLE IF NOT EXISTS work (
    task_id TEXT PRIMARY KEY,
    claimer TEXT,
    epoch INTEGER NOT NULL DEFAULT 0,
    claimed_at TEXT,
    expires_at TEXT,
    status TEXT NOT NULL DEFAULT 'available',
    result TEXT,
    metadata TEXT,
    completed_at TEXT,
    hmac TEXT
);
CREATE INDEX IF NOT EXISTS idx_work_claimer ON work(claimer);
CREATE INDEX IF NOT EXISTS idx_work_status ON work(status);

CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sender TEXT NOT NULL,
    recipient TEXT,  -- NULL = broadcast
    channel TEXT NOT NULL DEFAULT 'general',
    body TEXT NOT NULL,
    hmac TEXT,  -- HMAC authenticating (sender|recipient|channel|body)
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX IF NOT EXISTS idx_messages_recipient ON messages(recipient);
CREATE INDEX IF NOT EXISTS idx_messages_channel ON messages(channel);
CREATE INDEX IF NOT EXISTS idx_messages_created ON messages(created_at);

-- Task-id GLOB patterns under which coord refuses a claim made without a
-- key that can sign as the claimer.
CREATE TABLE IF NOT EXISTS coord_gate (
    pattern TEXT PRIMARY KEY NOT NULL,
    note TEXT
);

-- Signed history (docs/history.md): one event per state change, written in
-- the same transaction as the change by every coord writer, signed by the
-- acting agent over all its columns but `hmac`, and chained: `prev` is the
-- link (coord_event_link) of event seq - 1, '' for the first. `subject`
-- keeps its stored type: a task's id (TEXT) or a message's id (INTEGER);
-- `state` is the canonical JSON of the row after the operation.
CREATE TABLE IF NOT EXISTS coord_events (
    seq INTEGER PRIMARY KEY,
    prev TEXT NOT NULL,
    op TEXT NOT NULL,
    subject NOT NULL,
    at TEXT NOT NULL,
    agent TEXT NOT NULL,
    state TEXT NOT NULL,
    hmac TEXT
);
CREATE INDEX IF NOT EXISTS idx_coord_events_subject ON coord_events(subject, seq);

-- Checkpoints: "the log whose first event has link `origin` has `size`
-- events ending in `head`", signed by the agent who saw it (cosigned by
-- every agent that runs `coord checkpoint`).
CREATE TABLE IF NOT EXISTS coord_checkpoints (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    origin TEXT NOT NULL,
    size INTEGER NOT NULL,
    head TEXT NOT NULL,
    at TEXT NOT NULL,
    hmac TEXT
);
