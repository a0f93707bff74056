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
